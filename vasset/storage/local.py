"""Local-disk BlobStore: objects are files; a multipart upload is one sparse file.

Parts are written with pwrite at their offset into ``multipart/{id}/data``, so completing an
upload is a rename, never a copy. A part becomes visible only when its marker file
``parts/{n}.json`` is written after the data is fsynced: a crash mid-part leaves no marker.
A per-part flock serializes concurrent writers of the same part across processes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from vasset.errors import StorageError
from vasset.storage.base import BlobStore, ObjectInfo, PartInfo, PartWriter

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".jpg": "image/jpeg",
    ".json": "application/json",
}


def guess_content_type(key: str) -> str:
    """Content type from a key's extension (keys are ours, so this is reliable)."""
    return _CONTENT_TYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")


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
        self.existing: PartInfo | None = None

    def _open(self) -> None:
        parts = self._mp_dir / "parts"
        if not parts.is_dir():
            raise FileNotFoundError(f"no multipart upload at {self._mp_dir}")
        self._lock_fd = os.open(parts / f"{self._number}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
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
            tmp.write_text(
                json.dumps({"number": info.number, "size": info.size, "etag": info.etag})
            )
            os.replace(tmp, marker)
            return info
        finally:
            self._close()

    async def commit(self, md5_hex: str | None) -> PartInfo:
        """fsync the bytes, then publish the marker that makes the part exist."""
        return await self._store._run(self._commit, md5_hex)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    async def abort(self) -> None:
        """Leave no marker; partial bytes in the data file are overwritten by a re-send."""
        await self._store._run(self._close)


class LocalBlobStore(BlobStore):
    """Objects as files under ``root/objects``; multipart uploads under ``root/multipart``."""

    min_part_size = 1
    presigns = False

    def __init__(self, root: str | Path, threads: int = 8) -> None:
        self.root = Path(root).resolve()
        self.objects = self.root / "objects"
        self.multipart = self.root / "multipart"
        self.tmp = self.root / "tmp"
        for folder in (self.objects, self.multipart, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="localstore")

    async def _run(self, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"local storage failed: {exc.strerror}") from exc

    def _path(self, key: str) -> Path:
        path = (self.objects / key).resolve()
        if not path.is_relative_to(self.objects):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        """The file behind key."""
        return self._path(key)

    def _tmp_path(self) -> Path:
        return self.tmp / f"{time.time():.0f}-{secrets.token_hex(8)}"

    def _install(self, tmp: Path, key: str) -> ObjectInfo:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        return self._head(key)  # type: ignore[return-value]

    def _put_file(self, key: str, path: Path) -> ObjectInfo:
        tmp = self._tmp_path()
        shutil.copyfile(path, tmp)
        return self._install(tmp, key)

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Copy a file in through a temp file and an atomic rename."""
        return await self._run(self._put_file, key, Path(path))

    def _put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        tmp = self._tmp_path()
        tmp.write_bytes(data)
        return self._install(tmp, key)

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Write bytes through a temp file and an atomic rename."""
        return await self._run(self._put_bytes, key, data)

    def _head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            content_type=guess_content_type(key),
            mtime=st.st_mtime,
        )

    async def head(self, key: str) -> ObjectInfo | None:
        """Stat the object's file."""
        return await self._run(self._head, key)

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Stream a byte range of the file."""
        path = self._path(key)
        try:
            fd = await self._run(os.open, path, os.O_RDONLY)
        except FileNotFoundError as exc:
            from vasset.errors import ObjectNotFound

            raise ObjectNotFound(f"object {key} does not exist") from exc
        try:
            pos = start
            while end is None or pos <= end:
                want = chunk_size if end is None else min(chunk_size, end - pos + 1)
                data = await self._run(os.pread, fd, want, pos)
                if not data:
                    break
                pos += len(data)
                yield data
        finally:
            os.close(fd)

    async def download_file(self, key: str, path: Path) -> None:
        """Copy the object's file out."""
        src = self._path(key)
        try:
            await self._run(shutil.copyfile, src, path)
        except FileNotFoundError as exc:
            from vasset.errors import ObjectNotFound

            raise ObjectNotFound(f"object {key} does not exist") from exc

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    async def delete(self, key: str) -> None:
        """Unlink the file."""
        await self._run(self._delete, key)

    def _list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.objects
        # The prefix may end mid-name ("a/b" matches "a/bc"): walk its parent and filter.
        walk_root = base if prefix.endswith("/") or not prefix else base.parent
        if not walk_root.exists():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(walk_root):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), self.objects)
                if rel.startswith(prefix):
                    keys.append(rel)
        return sorted(keys)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under prefix."""
        return await self._run(self._list, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        keys = self._list(prefix)
        for key in keys:
            self._delete(key)
        return len(keys)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key under prefix."""
        return await self._run(self._delete_prefix, prefix)

    def _copy(self, src_key: str, dst_key: str) -> None:
        tmp = self._tmp_path()
        shutil.copyfile(self._path(src_key), tmp)
        self._install(tmp, dst_key)

    async def copy(self, src_key: str, dst_key: str) -> None:
        """Copy through a temp file and an atomic rename."""
        try:
            await self._run(self._copy, src_key, dst_key)
        except FileNotFoundError as exc:
            from vasset.errors import ObjectNotFound

            raise ObjectNotFound(f"object {src_key} does not exist") from exc

    # multipart
    def _mp_dir(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise ValueError("bad multipart id")
        return self.multipart / upload_id

    def _create_multipart(self, key: str) -> str:
        upload_id = secrets.token_hex(16)
        mp = self._mp_dir(upload_id)
        (mp / "parts").mkdir(parents=True)
        (mp / "data").touch()
        (mp / "meta.json").write_text(json.dumps({"key": key, "created": time.time()}))
        return upload_id

    async def create_multipart(self, key: str) -> str:
        """Create the sparse data file and the parts folder."""
        return await self._run(self._create_multipart, key)

    async def open_part(
        self, key: str, upload_id: str, number: int, offset: int, size: int
    ) -> PartWriter:
        """Lock the part and open the data file for pwrite at offset."""
        writer = LocalPartWriter(self, self._mp_dir(upload_id), number, offset)
        try:
            await self._run(writer._open)
        except FileNotFoundError as exc:
            from vasset.errors import UploadNotFound

            raise UploadNotFound("the multipart upload no longer exists") from exc
        return writer

    def _list_parts(self, upload_id: str) -> list[PartInfo]:
        parts_dir = self._mp_dir(upload_id) / "parts"
        found = []
        if not parts_dir.is_dir():
            return found
        for marker in parts_dir.glob("*.json"):
            found.append(PartInfo(**json.loads(marker.read_text())))
        return sorted(found, key=lambda p: p.number)

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Read the part markers."""
        return await self._run(self._list_parts, upload_id)

    def _complete(self, key: str, upload_id: str, parts: list[PartInfo]) -> None:
        mp = self._mp_dir(upload_id)
        dest = self._path(key)
        if not mp.exists():
            if dest.exists():
                return  # completed before: idempotent
            raise FileNotFoundError(f"multipart upload {upload_id} is gone")
        stored = {p.number: p for p in self._list_parts(upload_id)}
        for part in parts:
            have = stored.get(part.number)
            if have is None or have.size != part.size or have.etag != part.etag:
                raise ValueError(f"part {part.number} is not stored as listed")
        total = sum(p.size for p in parts)
        data = mp / "data"
        with open(data, "r+b") as fh:
            fh.truncate(total)
            os.fsync(fh.fileno())
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(data, dest)
        shutil.rmtree(mp, ignore_errors=True)

    async def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> None:
        """Truncate the data file to size and rename it onto the key."""
        await self._run(self._complete, key, upload_id, parts)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Remove the multipart folder."""
        await self._run(shutil.rmtree, self._mp_dir(upload_id), True)

    def _list_multipart(self, prefix: str) -> list[tuple[str, str, float]]:
        found = []
        for mp in self.multipart.iterdir():
            try:
                meta = json.loads((mp / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if meta["key"].startswith(prefix):
                found.append((meta["key"], mp.name, float(meta["created"])))
        return found

    async def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str, float]]:
        """Unfinished multipart uploads, for the janitor."""
        return await self._run(self._list_multipart, prefix)

    async def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False)
