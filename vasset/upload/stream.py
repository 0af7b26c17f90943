"""Streaming a part's bytes into storage while hashing them, off the event loop.

The event loop only receives chunks and hands each one to a few "lanes": one thread per
consumer (part MD5, whole-file MD5, storage write), each fed through a bounded queue. The
lanes run in parallel (hashlib, ctypes and file writes release the GIL), and the loop never
waits for them unless a queue is full, which is the backpressure that bounds memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
from collections.abc import AsyncIterator, Callable

from vasset.storage.base import PartWriter
from vasset.upload.md5state import ResumableMD5

#: Chunks queued per lane; granian hands out chunks of up to ~400 KiB, so at most ~13 MiB.
LANE_DEPTH = 32


class BodyReader:
    """Hands out a request body chunk by chunk, never more than asked for."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""
        self.ended = False
        self.total = 0

    async def read(self, n: int) -> bytes:
        """At most n bytes (b'' once the body has ended); no copying unless a chunk is split."""
        if self._rest:
            data = self._rest
        else:
            if self.ended:
                return b""
            try:
                data = await anext(self._chunks)
            except StopAsyncIteration:
                self.ended = True
                return b""
        if len(data) > n:
            self._rest = data[n:]
            data = data[:n]
        else:
            self._rest = b""
        self.total += len(data)
        return data

    async def drain(self) -> int:
        """Read and drop the rest of the body; returns how many bytes were dropped."""
        dropped = len(self._rest)
        self._rest = b""
        while not self.ended:
            try:
                dropped += len(await anext(self._chunks))
            except StopAsyncIteration:
                self.ended = True
        return dropped


class _Lane(threading.Thread):
    """A thread applying one function to every chunk, in order."""

    def __init__(self, fn: Callable[[bytes], object], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=LANE_DEPTH)
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as exc:  # reported to the request by finish()
                    self.error = exc

    async def put(self, chunk: bytes | None) -> None:
        """Queue a chunk (None ends the lane), waiting off-loop only when the queue is full."""
        try:
            self.q.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self.q.put, chunk)


class PartSink:
    """Writes exactly ``size`` bytes of one part, hashing them on the way."""

    def __init__(
        self,
        writer: PartWriter,
        size: int,
        whole: ResumableMD5 | None = None,
        part_md5: bool = True,
    ) -> None:
        self.writer = writer
        self.size = size
        self.whole = whole
        self.md5 = hashlib.md5() if part_md5 else None
        self.received = 0

    def _lanes(self) -> list[_Lane]:
        lanes = [_Lane(self.writer.write, "part-write")]
        if self.md5 is not None:
            lanes.append(_Lane(self.md5.update, "part-md5"))
        if self.whole is not None:
            lanes.append(_Lane(self.whole.update, "whole-md5"))
        return lanes

    async def fill(self, reader: BodyReader) -> bool:
        """Copy the part's bytes from reader; False when the body ended first."""
        lanes = self._lanes()
        try:
            while self.received < self.size:
                data = await reader.read(self.size - self.received)
                if not data:
                    break
                self.received += len(data)
                for lane in lanes:
                    await lane.put(data)
                    if lane.error is not None:
                        raise lane.error
        finally:
            for lane in lanes:
                await lane.put(None)
            await asyncio.to_thread(_join_all, lanes)
        for lane in lanes:
            if lane.error is not None:
                raise lane.error
        return self.received == self.size


def _join_all(lanes: list[_Lane]) -> None:
    for lane in lanes:
        lane.join()
