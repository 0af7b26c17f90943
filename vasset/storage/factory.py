"""Build the configured BlobStore from settings."""

from __future__ import annotations

from urllib.parse import urlparse

from vasset.settings import Settings
from vasset.storage.base import BlobStore


def open_store(settings: Settings) -> BlobStore:
    """The BlobStore that VASSET_STORAGE_URL names (file://PATH or oss://BUCKET[/prefix])."""
    url = settings.storage_url
    if url.startswith("file://"):
        from vasset.storage.local import LocalBlobStore

        return LocalBlobStore(url[len("file://") :] or ".")
    if url.startswith("oss://"):
        from vasset.storage.oss import OssBlobStore

        parsed = urlparse(url)
        return OssBlobStore(
            endpoint=settings.oss_endpoint,
            bucket=settings.oss_bucket_name,
            access_key_id=settings.oss_access_key_id,
            access_key_secret=settings.oss_access_key_secret,
            security_token=settings.oss_security_token,
            region=settings.oss_region,
            signature_version=settings.oss_signature_version,
            prefix=parsed.path.strip("/"),
            pool_size=settings.oss_pool_size,
        )
    raise ValueError(f"unsupported VASSET_STORAGE_URL: {url!r}")
