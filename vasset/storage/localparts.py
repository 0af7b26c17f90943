"""Local-disk part writers: one part is pwritten at its offset into the upload's data file.

A part becomes visible only when its marker file ``parts/{n}.json`` is written after the data
is fsynced: a crash, a disconnect or a refused body leaves no marker. The per-part flock is
taken without waiting: a second writer of the same part (in any process) is answered
UploadInProgress at once instead of parking a pool thread that the first writer needs to
commit and release the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from vasset.errors import UploadInProgress
from vasset.storage.base import PartInfo, PartWriter

if TYPE_CHECKING:
    from vasset.storage.local import LocalBlobStore


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.sync_file_range.argtypes = [
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_uint,
        ]
        return libc
    except (OSError, AttributeError):
        return None


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out now (Linux sync_file_range, non-blocking)."""
    libc = _libc()
    if libc is not None:
        libc.sync_file_range(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE


class LocalPartWriter(PartWriter):
    """Writes one part into the shared data file of a multipart upload."""

    def __init__(self, store: LocalBlobStore, mp_dir: Path, number: int, offset: int) -> None:
        self._store = store
        self._dirty = 0
        self._mp_dir = mp_dir
        self._number = number
        self._offset = offset
        self._written = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._committing: asyncio.Future[PartInfo] | None = None
        self.existing: PartInfo | None = None

    def _open(self) -> None:
        parts = self._mp_dir / "parts"
        if not parts.is_dir():
            raise FileNotFoundError(f"no multipart upload at {self._mp_dir}")
        self._lock_fd = os.open(parts / f"{self._number}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._close()
            raise UploadInProgress(
                f"part {self._number} is being stored by another request; retry shortly",
                pseq=self._number,
            ) from None
        marker = parts / f"{self._number}.json"
        if marker.exists():
            # Stored already: the bytes stay as they are (first complete writer wins).
            self.existing = PartInfo(**json.loads(marker.read_text()))
            return
        self._fd = os.open(self._mp_dir / "data", os.O_WRONLY)

    def write(self, chunk: bytes) -> None:
        """Write the chunk at the part's current position (discarded if already stored)."""
        if self._fd is None:
            self._written += len(chunk)
            return
        pos = self._offset + self._written
        self._written += len(chunk)
        view = memoryview(chunk)
        while view:
            done = os.pwrite(self._fd, view, pos)
            pos += done
            view = view[done:]
        # Start writeback now so the fsync at commit waits only for the tail.
        self._dirty += len(chunk)
        if self._dirty >= 8 << 20:
            _start_writeback(self._fd, pos - self._dirty, self._dirty)
            self._dirty = 0

    def _commit(self, md5_hex: str | None) -> PartInfo:
        try:
            if self.existing is not None:
                return self.existing
            assert self._fd is not None
            # Durable before acknowledged: a part survives power loss, not only a crash.
            os.fsync(self._fd)
            info = PartInfo(number=self._number, size=self._written, etag=md5_hex or "")
            marker = self._mp_dir / "parts" / f"{self._number}.json"
            tmp = marker.with_suffix(f".tmp{secrets.token_hex(4)}")
            try:
                tmp.write_text(
                    json.dumps({"number": info.number, "size": info.size, "etag": info.etag})
                )
                os.replace(tmp, marker)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return info
        finally:
            self._close()

    async def commit(self, md5_hex: str | None) -> PartInfo:
        """fsync the bytes, then publish the marker that makes the part exist."""
        # Shielded: a cancelled request must not close the files under a running commit.
        self._committing = asyncio.ensure_future(self._store._run(self._commit, md5_hex))
        return await asyncio.shield(self._committing)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    async def abort(self) -> None:
        """Leave no marker; partial bytes in the data file are overwritten by a re-send."""
        if self._committing is not None:
            # The commit closes the files itself; it has the whole, verified part.
            with contextlib.suppress(Exception):
                await self._committing
            return
        await self._store._run(self._close)
