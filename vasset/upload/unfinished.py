"""The stored bytes of an upload that will not complete: its multipart upload and tail objects."""

from __future__ import annotations

from vasset.storage import keys
from vasset.storage.base import BlobStore


async def drop_unfinished(store: BlobStore, key: str, multipart_id: str | None) -> None:
    """Abort the multipart upload of key (when it has one) and remove its tail objects."""
    if multipart_id:
        await store.abort_multipart(key, multipart_id)
    await store.delete_prefix(keys.tail_prefix(key))
