"""Aliyun OSS BlobStore on oss2: multipart uploads are OSS multipart uploads, parts are streamed.

oss2 is blocking, so every call runs in this store's own thread pool (``pool_size`` threads,
and an HTTP connection pool of the same size). Idempotent calls are retried with exponential
backoff on connection errors and 5xx; parts are streamed and retried by ``oss_parts``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import oss2
import oss2.exceptions as oss_exc
from oss2.models import PartInfo as OssPartInfo

from vasset.errors import ObjectNotFound, StorageError, UploadNotFound
from vasset.storage.base import BlobStore, ObjectInfo, PartInfo, PartWriter
from vasset.storage.oss_parts import OssPartWriter, describe, retryable
from vasset.storage.oss_post import post_form

T = TypeVar("T")

#: Keys one DeleteMultipleObjects request may name.
_DELETE_BATCH = 1000


def _content_type(key: str) -> str:
    from vasset.storage.local import guess_content_type

    return guess_content_type(key)


class OssBlobStore(BlobStore):
    """Objects and multipart uploads in one OSS bucket, optionally under a key prefix."""

    min_part_size = 100 * 1024
    presigns = True

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key_id: str,
        access_key_secret: str,
        security_token: str = "",
        region: str = "",
        signature_version: str = "v1",
        prefix: str = "",
        pool_size: int = 16,
        *,
        retries: int = 3,
        backoff: float = 0.2,
        timeout: float = 30.0,
        spool_parts: bool = True,
        spool_dir: str | None = None,
    ) -> None:
        if signature_version not in ("v1", "v4"):
            raise ValueError(f"signature_version must be v1 or v4, not {signature_version!r}")
        if signature_version == "v4" and not region:
            raise ValueError("V4 signatures need the bucket's region (e.g. cn-hangzhou)")
        if security_token:
            auth: Any = oss2.StsAuth(
                access_key_id, access_key_secret, security_token, auth_version=signature_version
            )
        else:
            auth = oss2.make_auth(access_key_id, access_key_secret, signature_version)
        self.bucket_name = bucket
        self.endpoint = endpoint
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.retries = retries
        self.backoff = backoff
        self.spool_parts = spool_parts
        self.spool_dir = spool_dir
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._security_token = security_token
        # One pool for calls and one for part streams (a part holds its thread for the whole
        # body), so long uploads never starve HEADs and listings; connections cover both.
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="oss")
        self._part_pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="oss-part")
        self._session = oss2.Session(pool_size=2 * pool_size)
        common = {
            "session": self._session,
            "connect_timeout": timeout,
            "region": region or None,
        }
        self._bucket = oss2.Bucket(auth, endpoint, bucket, enable_crc=False, **common)
        # Whole-object transfers also check OSS's CRC64 (parts are checked by MD5 instead).
        self._crc_bucket = oss2.Bucket(auth, endpoint, bucket, enable_crc=True, **common)

    # plumbing
    def _k(self, key: str) -> str:
        return self.prefix + key

    def _storage_error(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"OSS {what} failed: {describe(exc)}")

    def _retry(self, fn: Callable[[], T], what: str, first_error: BaseException | None = None) -> T:
        """Call fn, retrying connection errors and 5xx with jittered exponential backoff."""
        attempt = 1 if first_error is not None else 0
        last = first_error
        while True:
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                return fn()
            except Exception as exc:
                if not retryable(exc):
                    raise
                last = exc
            attempt += 1
            if attempt > self.retries:
                raise self._storage_error(what, last) from last

    async def _run(self, fn: Callable[[], T], what: str, retry: bool = True) -> T:
        def call() -> T:
            if retry:
                return self._retry(fn, what)
            try:
                return fn()
            except Exception as exc:
                if retryable(exc):
                    raise self._storage_error(what, exc) from exc
                raise

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    @staticmethod
    def _etag(value: str | None) -> str:
        return (value or "").strip('"').lower()

    # whole objects
    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file in one PutObject (OSS checks the CRC64 as it arrives)."""
        ctype = content_type or _content_type(key)

        def call() -> tuple[int, str]:
            size = os.path.getsize(path)
            result = self._crc_bucket.put_object_from_file(
                self._k(key), str(path), headers={"Content-Type": ctype}
            )
            return size, result.etag

        size, etag = await self._run(call, "put_object")
        return ObjectInfo(key, size, self._etag(etag), ctype, time.time())

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Upload bytes with Content-MD5, so OSS rejects anything altered on the way."""
        ctype = content_type or _content_type(key)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        result = await self._run(
            lambda: self._crc_bucket.put_object(
                self._k(key), data, headers={"Content-Type": ctype, "Content-MD5": md5}
            ),
            "put_object",
        )
        return ObjectInfo(key, len(data), self._etag(result.etag), ctype, time.time())

    async def head(self, key: str) -> ObjectInfo | None:
        """HeadObject; None when the key does not exist."""

        def call() -> ObjectInfo | None:
            try:
                r = self._bucket.head_object(self._k(key))
            except oss_exc.NotFound:
                return None
            return ObjectInfo(
                key,
                r.content_length,
                self._etag(r.etag),
                r.content_type or "application/octet-stream",
                float(r.last_modified or 0),
            )

        return await self._run(call, "head_object")

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Ranged GetObject, streamed; a dropped connection resumes from the last byte read."""
        pos = start
        drops = 0
        while end is None or pos <= end:
            resp = await self._open_range(key, pos, end)
            if resp is None:
                return
            try:
                while True:
                    try:
                        data = await self._run(
                            functools.partial(resp.read, chunk_size), "read", False
                        )
                    except Exception as exc:
                        # requests raises its own errors mid-body; reopen from pos a few times
                        drops += 1
                        if drops > self.retries:
                            raise self._storage_error("get_object", exc) from exc
                        break
                    if not data:
                        return
                    pos += len(data)
                    yield data
            finally:
                with contextlib.suppress(Exception):
                    resp.resp.response.close()

    async def _open_range(self, key: str, start: int, end: int | None) -> Any:
        # "standard" ranges: OSS otherwise answers a too-long range with the whole object
        headers = {"x-oss-range-behavior": "standard"}
        byte_range = None if start == 0 and end is None else (start, end)

        def call() -> Any:
            try:
                return self._bucket.get_object(self._k(key), byte_range, headers=headers)
            except oss_exc.NoSuchKey:
                raise ObjectNotFound(f"object {key} does not exist") from None
            except oss_exc.ServerError as exc:
                if exc.status == 416:
                    return None  # start lies past the end: nothing to read
                raise

        return await self._run(call, "get_object")

    async def download_file(self, key: str, path: Path) -> None:
        """GetObject into a file, checking OSS's CRC64 of the whole object."""

        def call() -> None:
            try:
                self._crc_bucket.get_object_to_file(self._k(key), str(path))
            except oss_exc.NoSuchKey:
                raise ObjectNotFound(f"object {key} does not exist") from None

        await self._run(call, "get_object")

    async def delete(self, key: str) -> None:
        """DeleteObject (OSS answers 204 for a missing key too)."""
        await self._run(lambda: self._bucket.delete_object(self._k(key)), "delete_object")

    def _list_full(self, prefix: str) -> list[str]:
        return [
            obj.key
            for obj in oss2.ObjectIteratorV2(self._bucket, prefix=self._k(prefix), max_keys=1000)
        ]

    async def list_keys(self, prefix: str) -> list[str]:
        """ListObjectsV2, every page."""
        full = await self._run(lambda: self._list_full(prefix), "list_objects")
        return [k[len(self.prefix) :] for k in full]

    async def delete_prefix(self, prefix: str) -> int:
        """List, then DeleteMultipleObjects in batches of 1000."""
        keys = await self._run(lambda: self._list_full(prefix), "list_objects")
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = keys[i : i + _DELETE_BATCH]
            await self._run(
                functools.partial(self._bucket.batch_delete_objects, batch), "delete_objects"
            )
        return len(keys)

    async def copy(self, src_key: str, dst_key: str) -> None:
        """CopyObject inside the bucket (OSS limits it to sources up to 1 GiB)."""

        def call() -> None:
            try:
                self._bucket.copy_object(self.bucket_name, self._k(src_key), self._k(dst_key))
            except oss_exc.NoSuchKey:
                raise ObjectNotFound(f"object {src_key} does not exist") from None

        await self._run(call, "copy_object")

    # multipart uploads
    async def create_multipart(self, key: str) -> str:
        """InitiateMultipartUpload (a retry may leave an orphan upload; the janitor aborts it)."""
        ctype = _content_type(key)
        result = await self._run(
            lambda: self._bucket.init_multipart_upload(
                self._k(key), headers={"Content-Type": ctype}
            ),
            "init_multipart_upload",
        )
        return result.upload_id

    async def open_part(
        self, key: str, upload_id: str, number: int, offset: int, size: int
    ) -> PartWriter:
        """Start streaming part ``number``; OSS replaces an older part of the same number."""
        return OssPartWriter(self, self._k(key), upload_id, number, size)

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """ListParts, every page; an upload that is gone has no parts."""

        def call() -> list[PartInfo]:
            try:
                return [
                    PartInfo(p.part_number, p.size, self._etag(p.etag))
                    for p in oss2.PartIterator(self._bucket, self._k(key), upload_id)
                ]
            except oss_exc.NoSuchUpload:
                return []

        return await self._run(call, "list_parts")

    async def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> None:
        """CompleteMultipartUpload; done already (NoSuchUpload and the object exists) is fine."""
        oss_parts = [OssPartInfo(p.number, p.etag.upper()) for p in parts]

        def call() -> None:
            try:
                self._bucket.complete_multipart_upload(self._k(key), upload_id, oss_parts)
            except oss_exc.NoSuchUpload:
                # A retried complete whose first try succeeded lands here too.
                try:
                    self._bucket.head_object(self._k(key))
                except oss_exc.NotFound:
                    raise UploadNotFound("the multipart upload no longer exists") from None
            except oss_exc.ServerError as exc:
                if exc.status == 400:
                    raise ValueError(f"OSS refused the part list: {describe(exc)}") from exc
                raise

        await self._run(call, "complete_multipart_upload")

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload that is gone already is fine."""

        def call() -> None:
            with contextlib.suppress(oss_exc.NoSuchUpload):
                self._bucket.abort_multipart_upload(self._k(key), upload_id)

        await self._run(call, "abort_multipart_upload")

    async def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str, float]]:
        """ListMultipartUploads, every page, for the janitor."""

        def call() -> list[tuple[str, str, float]]:
            return [
                (u.key[len(self.prefix) :], u.upload_id, float(u.initiation_date))
                for u in oss2.MultipartUploadIterator(self._bucket, prefix=self._k(prefix))
            ]

        return await self._run(call, "list_multipart_uploads")

    # URLs
    @staticmethod
    def _expires_in(expires_at: int) -> int:
        return max(1, int(expires_at) - int(time.time()))

    def presign_get(self, key: str, expires_at: int, filename: str | None = None) -> str | None:
        """A signed GET URL; with filename, OSS answers Content-Disposition: attachment."""
        params = {}
        if filename:
            ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
            params["response-content-disposition"] = (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
            )
        return self._bucket.sign_url(
            "GET", self._k(key), self._expires_in(expires_at), params=params, slash_safe=True
        )

    def presign_part_put(
        self, key: str, upload_id: str, number: int, expires_at: int
    ) -> str | None:
        """A signed UploadPart URL (partNumber and uploadId are signed sub-resources)."""
        params = {"partNumber": str(number), "uploadId": upload_id}
        return self._bucket.sign_url(
            "PUT", self._k(key), self._expires_in(expires_at), params=params, slash_safe=True
        )

    def presign_post(
        self, key_prefix: str, max_size: int, expires_at: int
    ) -> tuple[str, dict[str, str]]:
        """URL and form fields (V1 policy) for a browser PostObject under key_prefix."""
        return post_form(
            endpoint=self.endpoint,
            bucket=self.bucket_name,
            full_prefix=self._k(key_prefix),
            max_size=max_size,
            expires_at=expires_at,
            access_key_id=self._access_key_id,
            access_key_secret=self._access_key_secret,
            security_token=self._security_token,
        )

    async def close(self) -> None:
        """Stop the thread pools."""
        self._pool.shutdown(wait=False)
        self._part_pool.shutdown(wait=False)
