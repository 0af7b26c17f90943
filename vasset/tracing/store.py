"""A BlobStore that opens a span around every call of the store it wraps (tracing on only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.trace import Span, SpanKind, Tracer

from vasset.storage.base import BlobStore, ObjectInfo, PartInfo, PartWriter


class TracingBlobStore(BlobStore):
    """Spans named `storage <method>` with the key, sizes and backend as attributes."""

    def __init__(self, inner: BlobStore, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer
        self.backend = type(inner).__name__
        self.min_part_size = inner.min_part_size
        self.presigns = inner.presigns

    def __getattr__(self, name: str) -> Any:
        # Backend-specific attributes (an OSS store's bucket_name, prefix...) read through.
        return getattr(self.inner, name)

    @contextmanager
    def _span(self, method: str, key: str, **attributes: Any) -> Iterator[Span]:
        attrs = {"vasset.storage.backend": self.backend, "vasset.storage.key": key}
        attrs.update({f"vasset.storage.{k}": v for k, v in attributes.items() if v is not None})
        with self.tracer.start_as_current_span(
            f"storage {method}", kind=SpanKind.CLIENT, attributes=attrs
        ) as span:
            yield span

    # whole objects
    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        with self._span("put_file", key) as span:
            info = await self.inner.put_file(key, path, content_type)
            span.set_attribute("vasset.storage.size", info.size)
            return info

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        with self._span("put_bytes", key, size=len(data)):
            return await self.inner.put_bytes(key, data, content_type)

    async def head(self, key: str) -> ObjectInfo | None:
        with self._span("head", key) as span:
            info = await self.inner.head(key)
            span.set_attribute("vasset.storage.found", info is not None)
            if info is not None:
                span.set_attribute("vasset.storage.size", info.size)
            return info

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        # Not the current span: a generator's context would leak into its consumer between yields.
        span = self.tracer.start_span(
            "storage read",
            kind=SpanKind.CLIENT,
            attributes={
                "vasset.storage.backend": self.backend,
                "vasset.storage.key": key,
                "vasset.storage.start": start,
                "vasset.storage.end": -1 if end is None else end,
            },
        )
        sent = 0
        try:
            async for chunk in self.inner.read(key, start, end, chunk_size):
                sent += len(chunk)
                yield chunk
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.set_attribute("vasset.storage.size", sent)
            span.end()

    async def download_file(self, key: str, path: Path) -> None:
        with self._span("download_file", key) as span:
            await self.inner.download_file(key, path)
            span.set_attribute("vasset.storage.size", path.stat().st_size)

    async def delete(self, key: str) -> None:
        with self._span("delete", key):
            await self.inner.delete(key)

    async def delete_prefix(self, prefix: str) -> int:
        with self._span("delete_prefix", prefix) as span:
            removed = await self.inner.delete_prefix(prefix)
            span.set_attribute("vasset.storage.removed", removed)
            return removed

    async def list_keys(self, prefix: str) -> list[str]:
        with self._span("list_keys", prefix) as span:
            found = await self.inner.list_keys(prefix)
            span.set_attribute("vasset.storage.count", len(found))
            return found

    async def copy(self, src_key: str, dst_key: str) -> None:
        with self._span("copy", dst_key, source=src_key):
            await self.inner.copy(src_key, dst_key)

    # multipart uploads
    async def create_multipart(self, key: str) -> str:
        with self._span("create_multipart", key):
            return await self.inner.create_multipart(key)

    async def open_part(
        self, key: str, upload_id: str, number: int, offset: int, size: int
    ) -> PartWriter:
        with self._span("open_part", key, part=number, offset=offset, size=size):
            writer = await self.inner.open_part(key, upload_id, number, offset, size)
        return TracingPartWriter(writer, self, key, number)

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        with self._span("list_parts", key) as span:
            parts = await self.inner.list_parts(key, upload_id)
            span.set_attribute("vasset.storage.count", len(parts))
            return parts

    async def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> None:
        with self._span("complete_multipart", key, parts=len(parts), size=_total(parts)):
            await self.inner.complete_multipart(key, upload_id, parts)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        with self._span("abort_multipart", key):
            await self.inner.abort_multipart(key, upload_id)

    async def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str, float]]:
        with self._span("list_multipart_uploads", prefix) as span:
            found = await self.inner.list_multipart_uploads(prefix)
            span.set_attribute("vasset.storage.count", len(found))
            return found

    # URLs and local paths: no I/O, no span
    def presign_get(self, key: str, expires_at: int, filename: str | None = None) -> str | None:
        return self.inner.presign_get(key, expires_at, filename)

    def presign_part_put(
        self, key: str, upload_id: str, number: int, expires_at: int
    ) -> str | None:
        return self.inner.presign_part_put(key, upload_id, number, expires_at)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    async def close(self) -> None:
        await self.inner.close()


class TracingPartWriter(PartWriter):
    """A part writer whose commit and abort are spans (writes are per chunk: no span)."""

    def __init__(self, inner: PartWriter, store: TracingBlobStore, key: str, number: int) -> None:
        self.inner = inner
        self.store = store
        self.key = key
        self.number = number
        # Known once the part is opened (a part stored before: writes dropped, commit returns it).
        self.existing = inner.existing

    def write(self, chunk: bytes) -> None:
        self.inner.write(chunk)

    async def commit(self, md5_hex: str | None) -> PartInfo:
        with self.store._span("commit_part", self.key, part=self.number) as span:
            info = await self.inner.commit(md5_hex)
            span.set_attribute("vasset.storage.size", info.size)
            return info

    async def abort(self) -> None:
        with self.store._span("abort_part", self.key, part=self.number):
            await self.inner.abort()


def _total(parts: list[PartInfo]) -> int:
    return sum(p.size for p in parts)
