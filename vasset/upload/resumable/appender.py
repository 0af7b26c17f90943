"""Appending a request body to a protocol upload: parts in storage, then one durable record.

The body streams into storage parts of at most ``part_cap`` bytes. Bytes that end a body but do
not fill the store's smallest part (OSS: 100 KiB, unless they are the upload's last) go to a
small tail object instead, and the next body starts its first part with them. After each part
(or, with Upload-Checksum, once the whole body is verified) one guarded UPDATE moves the offset,
the tail, the next part number and the whole-file MD5 state together: what HEAD reports is
exactly what storage holds, whatever dies afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.http.body import ClientGone
from vasset.metrics.registry import metrics
from vasset.storage import keys
from vasset.storage.base import BlobStore, PartWriter
from vasset.upload import repository as uploads
from vasset.upload.md5state import ResumableMD5
from vasset.upload.resumable import repository as repo
from vasset.upload.resumable.lease import Lease
from vasset.upload.resumable.repository import ResumableRow
from vasset.upload.stream import BodyReader, _join_all, _Lane

log = structlog.get_logger(__name__)

#: Bytes read from the body at a time (granian hands out chunks of up to ~400 KiB anyway).
READ_SIZE = 1 << 20


class Progress:
    """The durable position of an upload, as this request last recorded (or will record) it."""

    def __init__(self, row: ResumableRow) -> None:
        self.offset = row.offset
        self.tail_size = row.tail_size
        self.tail_part = row.tail_part
        self.whole = ResumableMD5(row.md5_state)

    @property
    def in_parts(self) -> int:
        """Bytes already in recorded parts (the tail follows them)."""
        return self.offset - self.tail_size


class Part(msgspec.Struct):
    """What one part step did: how many bytes, whether they became a part or the tail."""

    size: int
    new: int
    number: int
    etag: str | None
    tail: bytes
    cut: bool


class Appender:
    """Streams one body onto an upload under the caller's write lease."""

    def __init__(self, engine: AsyncEngine, store: BlobStore, part_cap: int, lease: Lease) -> None:
        self.engine = engine
        self.store = store
        self.part_cap = part_cap
        self.lease = lease

    async def append(
        self,
        row: ResumableRow,
        reader: BodyReader,
        limit: int,
        checksum: tuple[str, bytes] | None = None,
    ) -> int:
        """Store up to ``limit`` body bytes; returns the new durable offset.

        A body that is cut keeps what arrived (then ClientGone is raised), except with a
        checksum: a body that cannot be verified keeps nothing.
        """
        progress = Progress(row)
        check = hashlib.new(checksum[0]) if checksum else None
        pending: list[Part] = []
        recorded_offset = progress.offset
        old_tail = keys.tail_key(row.upload.storage_key, row.tail_part) if row.tail_size else None
        tail = await self._read_tail(row, progress)
        received = 0
        cut = False
        while not cut and received < limit:
            part = await self._one_part(row, reader, progress, tail, limit - received, check)
            tail = b""
            if part is None:
                break  # the body ended exactly where the last part did
            received += part.new
            metrics().upload_bytes_received.inc(part.new)
            cut = part.cut
            start_of_part = progress.in_parts
            if part.etag is not None:
                progress.offset = start_of_part + part.size
                progress.tail_size = 0
                pending.append(part)
            else:
                self.lease.check()
                await self.store.put_bytes(
                    keys.tail_key(row.upload.storage_key, part.number), part.tail
                )
                progress.offset = start_of_part + part.size
                progress.tail_size = part.size
                progress.tail_part = part.number
            if check is None:
                await self._record(row, recorded_offset, progress, pending)
                recorded_offset, pending = progress.offset, []
            if part.etag is None or reader.ended:
                break
        if check is not None and checksum is not None:
            if cut:
                raise ClientGone()
            if check.digest() != checksum[1]:
                log.info("checksum_mismatch", upload_id=row.upload_id, algorithm=checksum[0])
                raise errors.ChecksumMismatch()
            await self._record(row, recorded_offset, progress, pending)
        if old_tail and (not progress.tail_size or progress.tail_part != row.tail_part):
            await _forget(self.store, old_tail)
        if cut:
            raise ClientGone()
        return progress.offset

    async def seal(self, row: ResumableRow) -> None:
        """Turn the tail of a complete upload into its last part (OSS accepts a small last one)."""
        progress = Progress(row)
        tail = await self._read_tail(row, progress)
        part = await self._one_part(row, BodyReader(_nothing()), progress, tail, 0, None)
        if part is None or part.etag is None:
            raise errors.StorageError(f"upload {row.upload_id}: the tail could not be sealed")
        old_tail = keys.tail_key(row.upload.storage_key, row.tail_part)
        expected = progress.offset
        progress.tail_size = 0
        await self._record(row, expected, progress, [part])
        await _forget(self.store, old_tail)

    async def _read_tail(self, row: ResumableRow, progress: Progress) -> bytes:
        if not progress.tail_size:
            return b""
        key = keys.tail_key(row.upload.storage_key, row.tail_part)
        data = b"".join([c async for c in self.store.read(key, 0, progress.tail_size - 1)])
        if len(data) != progress.tail_size:
            raise errors.StorageError(f"upload {row.upload_id}: the tail is shorter than recorded")
        return data

    async def _one_part(
        self,
        row: ResumableRow,
        reader: BodyReader,
        progress: Progress,
        tail: bytes,
        room: int,
        check: Any,
    ) -> Part | None:
        """Write tail + body bytes as the next part, or keep them as the tail; None: no bytes."""
        cut = False
        try:
            first = await reader.read(min(READ_SIZE, room)) if room > 0 else b""
        except ClientGone:
            first, cut = b"", True
        if not first and not tail:
            return Part(0, 0, 0, None, b"", cut) if cut else None
        small = self.store.min_part_size
        number, writer = await self._open(row, progress)
        # No per-part MD5: the whole-file MD5 (and Upload-Checksum, when sent) verify the bytes,
        # and a second hash pass would cost a third of the CPU a byte takes.
        lanes = [_Lane(self._guarded(writer), "part-write")]
        new_lanes = [_Lane(progress.whole.update, "whole-md5")]
        if check is not None:
            new_lanes.append(_Lane(check.update, "checksum"))
        head = bytearray(tail)
        size, new = len(tail), 0
        try:
            if tail:
                await _feed(lanes, tail)
            data = first
            while data:
                await _feed(lanes + new_lanes, data)
                if size < small:
                    head += data[: small - size]
                size += len(data)
                new += len(data)
                want = min(self.part_cap - size, room - new, READ_SIZE)
                if want <= 0:
                    break
                try:
                    data = await reader.read(want)
                except ClientGone:
                    data, cut = b"", True
        except BaseException:
            await _close(lanes + new_lanes)
            await writer.abort()
            raise
        await _close(lanes + new_lanes)
        failed = [lane.error for lane in lanes + new_lanes if lane.error is not None]
        if failed:
            await writer.abort()
            raise failed[0]
        last = row.length is not None and progress.in_parts + size >= row.length
        if size >= small or last:
            self.lease.check()
            info = await writer.commit(None)
            return Part(size, new, number, info.etag, b"", cut)
        await writer.abort()
        return Part(size, new, number, None, bytes(head), cut)

    async def _open(self, row: ResumableRow, progress: Progress) -> tuple[int, PartWriter]:
        """A writer under a part number claimed in the database (never used by another writer)."""
        while True:
            async with transaction(self.engine) as conn:
                number = await repo.claim_part(conn, row.upload.id, self.lease.writer)
            if number is None:
                raise errors.UploadLocked("this request lost its write lease to another one")
            writer = await self.store.open_part(
                row.upload.storage_key, row.upload.multipart_id, number, progress.in_parts, 0
            )
            if writer.existing is None:
                return number, writer
            await writer.abort()  # a part from before claims were counted: skip its number

    def _guarded(self, writer: PartWriter) -> Callable[[bytes], None]:
        """writer.write, refused once the lease may belong to another writer."""
        lease = self.lease

        def write(chunk: bytes) -> None:
            lease.check()
            writer.write(chunk)

        return write

    async def _record(
        self, row: ResumableRow, expected: int, progress: Progress, parts: list[Part]
    ) -> None:
        """One transaction: the parts, the offset, the tail and the MD5 state (lease-fenced)."""
        async with transaction(self.engine) as conn:
            for part in parts:
                etag = part.etag or ""
                await uploads.record_part(conn, row.upload.id, part.number, part.size, etag)
            moved = await repo.advance(
                conn,
                row.upload.id,
                self.lease.writer,
                expected,
                progress.offset,
                progress.tail_size,
                progress.tail_part,
                progress.whole.save(),
            )
            if not moved:
                raise errors.UploadLocked("this request lost its write lease to another one")


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that ends at once


async def _feed(lanes: list[_Lane], data: bytes) -> None:
    for lane in lanes:
        await lane.put(data)


async def _close(lanes: list[_Lane]) -> None:
    for lane in lanes:
        await lane.put(None)
    await asyncio.to_thread(_join_all, lanes)


async def _forget(store: BlobStore, key: str) -> None:
    """Remove a tail that a part has absorbed (a leftover costs only its few bytes)."""
    try:
        await store.delete(key)
    except errors.VassetError as exc:
        log.warning("tail_left_behind", key=key, error=exc.code)
