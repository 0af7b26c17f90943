"""Streaming one part to OSS: a bounded queue into an upload thread, teed to a spool for retries.

``OssPartWriter.write`` feeds chunks through a bounded queue into a thread of the store's part
pool that runs ``upload_part`` with a generator body (chunked transfer), so a part is never held
in memory. A streamed part cannot be replayed from the client, so the writer also tees the bytes
into a spool file; if OSS fails mid-part, the rest of the body still goes to the spool and
commit retries ``upload_part`` from that file. Only when every retry fails does the caller see
StorageError (a 503), and the client re-sends the part.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import tempfile
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import oss2.exceptions as oss_exc

from vasset.errors import StorageError, UploadNotFound
from vasset.storage.base import PartInfo, PartWriter

if TYPE_CHECKING:
    from vasset.storage.oss import OssBlobStore

#: Chunks queued between a part's writer and its upload thread (backpressure bounds memory).
PART_QUEUE_DEPTH = 16
#: A part whose writer goes quiet this long is abandoned (its upload thread must not leak).
PART_IDLE_TIMEOUT = 300.0


class _Abort(Exception):
    """Raised inside a part's body generator so the request dies and OSS stores nothing."""


_END = object()
_ABORT = object()


def retryable(exc: BaseException) -> bool:
    """Whether an oss2 failure may pass on a retry: connection errors and 5xx."""
    if isinstance(exc, oss_exc.RequestError):
        return True  # connection refused/reset, timeouts
    return isinstance(exc, oss_exc.ServerError) and exc.status >= 500


def describe(exc: BaseException) -> str:
    """One line for an oss2 failure (status, code, message), for StorageError messages."""
    if isinstance(exc, oss_exc.OssError):
        if exc.status < 0:
            return str(exc.body)[:200]
        return f"{exc.status} {exc.code or ''} {exc.message or ''}".strip()
    return repr(exc)


class OssPartWriter(PartWriter):
    """Streams one part to OSS through a bounded queue; tees it to a spool for retries."""

    def __init__(
        self, store: OssBlobStore, key: str, upload_id: str, number: int, size: int
    ) -> None:
        self._store = store
        self._key = key
        self._upload_id = upload_id
        self._number = number
        self._size = size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=PART_QUEUE_DEPTH)
        self._written = 0
        self._closed = False
        self._spool: Any = None
        if store.spool_parts:
            self._spool = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by the thread)
                prefix="oss-part-", dir=store.spool_dir, delete=True
            )
        self._future: Future[str] = store._part_pool.submit(self._upload)

    # producer side (a worker thread of the caller)
    def write(self, chunk: bytes) -> None:
        """Queue a chunk for the upload thread; blocks while the queue is full."""
        if self._closed:
            raise RuntimeError("part writer is closed")
        self._written += len(chunk)
        self._put(bytes(chunk))

    def _put(self, item: Any) -> None:
        while True:
            try:
                self._queue.put(item, timeout=1)
                return
            except queue.Full:
                if self._future.done():
                    # The upload thread is gone (idle timeout, crash): nobody will drain it.
                    raise StorageError("the part upload stopped") from None

    async def commit(self, md5_hex: str | None) -> PartInfo:
        """End the body, wait for OSS, and check its ETag against the caller's MD5."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._put, _END)
        etag = (await asyncio.wrap_future(self._future)).lower()
        if md5_hex is not None and etag != md5_hex.lower():
            raise StorageError(
                f"OSS stored part {self._number} with ETag {etag}, expected MD5 {md5_hex}"
            )
        return PartInfo(number=self._number, size=self._written, etag=etag)

    async def abort(self) -> None:
        """Make the body generator raise, so the request dies and OSS keeps no part."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._put, _ABORT)
        with contextlib.suppress(BaseException):
            await asyncio.wrap_future(self._future)

    # the upload thread
    def _next(self) -> Any:
        try:
            return self._queue.get(timeout=PART_IDLE_TIMEOUT)
        except queue.Empty:
            return _ABORT

    def _body(self, state: dict[str, bool]):
        while True:
            item = self._next()
            if item is _END:
                state["ended"] = True
                return
            if item is _ABORT:
                state["aborted"] = True
                raise _Abort()
            if self._spool is not None:
                self._spool.write(item)
            yield item

    def _drain_to_spool(self, state: dict[str, bool]) -> None:
        """After a failed stream, keep taking the producer's bytes into the spool."""
        while not state.get("ended") and not state.get("aborted"):
            item = self._next()
            if item is _END:
                state["ended"] = True
            elif item is _ABORT:
                state["aborted"] = True
            else:
                self._spool.write(item)

    def _upload(self) -> str:
        state: dict[str, bool] = {}
        bucket = self._store._bucket
        try:
            try:
                return bucket.upload_part(
                    self._key, self._upload_id, self._number, self._body(state)
                ).etag
            except _Abort:
                raise
            except oss_exc.NoSuchUpload:
                self._drain_to_spool_quietly(state)
                raise UploadNotFound("the multipart upload no longer exists") from None
            except Exception as exc:
                # _Abort may arrive wrapped by requests; what counts is whether we aborted.
                if state.get("aborted"):
                    raise _Abort() from None
                if self._spool is None or not retryable(exc):
                    self._drain_to_spool_quietly(state)
                    raise self._store._storage_error("upload_part", exc) from exc
                first = exc
            self._drain_to_spool(state)
            if state.get("aborted"):
                raise _Abort()
            self._spool.flush()

            def from_spool() -> str:
                self._spool.seek(0)
                return bucket.upload_part(
                    self._key, self._upload_id, self._number, self._spool
                ).etag

            try:
                return self._store._retry(from_spool, "upload_part", first_error=first)
            except oss_exc.NoSuchUpload:
                raise UploadNotFound("the multipart upload no longer exists") from None
        finally:
            if self._spool is not None:
                self._spool.close()

    def _drain_to_spool_quietly(self, state: dict[str, bool]) -> None:
        # The producer may still be writing: consume until it ends so it never blocks.
        while not state.get("ended") and not state.get("aborted"):
            item = self._next()
            state["ended"] = item is _END
            state["aborted"] = item is _ABORT
