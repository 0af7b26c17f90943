"""A byte range of a local file in blocks for /play: cached pages inline, others in a thread.

A read served from the page cache costs less than the thread hop around it, so each block is
first read with ``RWF_NOWAIT`` (Linux: the kernel answers from the page cache or refuses
at once) on the event loop; only what is not cached goes to a thread, where waiting for the disk
blocks nobody. Every block lands in one buffer per stream, so a stream holds one block at most.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from pathlib import Path

from vasset import errors

#: 0 where the platform has no non-blocking file reads: every read then goes to a thread.
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
#: Errors that say this file system cannot read without blocking (not that the read failed).
_NOWAIT_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def _open_regular(path: Path) -> int:
    """A read-only descriptor of path; FileNotFoundError unless it is a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(path)
    return fd


class FileBlocks:
    """The bytes start..end (inclusive) of one file, as views of a reused block buffer.

    Each view stays valid only until the next block is asked for: send (or copy) it first.
    """

    def __init__(self, fd: int, start: int, end: int, block_size: int) -> None:
        self.fd: int | None = fd
        self.pos = start
        self.end = end
        self.buffer = memoryview(bytearray(min(block_size, end - start + 1)))
        self.nowait = _NOWAIT
        # Held by a thread's read and by close: a cancelled stream's read may still be running.
        self.lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path, start: int, end: int, block_size: int) -> FileBlocks:
        """Open path for reading start..end; ObjectNotFound when it is gone."""
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(None, _open_regular, path)
        except FileNotFoundError as exc:
            raise errors.ObjectNotFound() from exc
        # Sequential: the kernel reads ahead further, so fewer blocks miss the cache.
        os.posix_fadvise(fd, start, end - start + 1, os.POSIX_FADV_SEQUENTIAL)
        return cls(fd, start, end, block_size)

    def __aiter__(self) -> FileBlocks:
        return self

    async def __anext__(self) -> memoryview:
        """The next block (shorter at the end of the range); stops at its end or the file's."""
        if self.fd is None or self.pos > self.end:
            raise StopAsyncIteration
        target = self.buffer[: min(len(self.buffer), self.end - self.pos + 1)]
        got = self._read_cached(target) if self.nowait else None
        if got is None:
            loop = asyncio.get_running_loop()
            got = await loop.run_in_executor(None, self._read_waiting, target, self.pos)
        if got == 0:  # the file got shorter than the range since it was opened
            raise StopAsyncIteration
        self.pos += got
        return target[:got]

    def _read_cached(self, target: memoryview) -> int | None:
        """Bytes read into target from the page cache, or None when the disk must be waited for."""
        assert self.fd is not None
        try:
            return os.preadv(self.fd, [target], self.pos, self.nowait)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            self.nowait = 0  # this file system never reads without blocking: stop asking
            return None

    def _read_waiting(self, target: memoryview, pos: int) -> int:
        """Bytes read into target at pos, waiting for the disk (in a thread); 0 once closed."""
        with self.lock:
            return 0 if self.fd is None else os.preadv(self.fd, [target], pos)

    async def aclose(self) -> None:
        """Close the file (idempotent)."""
        with self.lock:
            if self.fd is not None:
                fd, self.fd = self.fd, None
                os.close(fd)
