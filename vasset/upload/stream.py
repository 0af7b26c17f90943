"""Streaming a part's bytes into storage while hashing them, off the event loop.

The body is read in batches; each batch is hashed (part MD5, and the whole-file MD5 when the
part extends it in order) and written concurrently in threads while the next batch arrives.
At most two batches are in memory at once, so a 5 GiB part costs a few MiB of RAM.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from vasset.storage.base import PartWriter
from vasset.upload.md5state import ResumableMD5

BATCH = 4 * 1024 * 1024


class BodyReader:
    """Hands out a request body in batches of at most n bytes."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""
        self.ended = False
        self.total = 0

    async def read(self, n: int) -> bytes:
        """Up to n bytes; fewer only at the end of the body (b'' once it has ended)."""
        parts = [self._rest] if self._rest else []
        have = len(self._rest)
        self._rest = b""
        while have < n and not self.ended:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self.ended = True
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if len(data) > n:
            self._rest = data[n:]
            data = data[:n]
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


class PartSink:
    """Writes exactly ``size`` bytes of one part, hashing them on the way."""

    def __init__(
        self,
        writer: PartWriter,
        size: int,
        pool: ThreadPoolExecutor,
        whole: ResumableMD5 | None = None,
    ) -> None:
        self.writer = writer
        self.size = size
        self.whole = whole
        self.md5 = hashlib.md5()
        self.received = 0
        self._pool = pool

    async def _consume(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        jobs = [loop.run_in_executor(self._pool, self.md5.update, data), self.writer.write(data)]
        if self.whole is not None:
            jobs.append(loop.run_in_executor(self._pool, self.whole.update, data))
        await asyncio.gather(*jobs)

    async def fill(self, reader: BodyReader) -> bool:
        """Copy the part's bytes from reader; False when the body ended first."""
        pending: asyncio.Future | None = None
        try:
            while self.received < self.size:
                data = await reader.read(min(BATCH, self.size - self.received))
                if not data:
                    break
                self.received += len(data)
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(self._consume(data))
            if pending is not None:
                await pending
                pending = None
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        return self.received == self.size
