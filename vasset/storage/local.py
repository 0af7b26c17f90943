"""Local-disk BlobStore: objects are files; a multipart upload is one sparse file.

Parts are written with pwrite at their offset into ``multipart/{id}/data``, so completing an
upload is a rename, never a copy (the part writers live in ``localparts``).

Keys that would leave the store (``..``, a symlink pointing outside), contain NUL, or cannot
name a file (a component over 255 bytes, a file used as a folder) are objects that do not exist.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vasset.errors import ObjectNotFound, StorageError, UploadNotFound
from vasset.storage.base import BlobStore, ObjectInfo, PartInfo, PartWriter
from vasset.storage.localparts import LocalPartWriter

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".json": "application/json",
    ".vtt": "text/vtt",
}

#: errnos that mean "no object can be under this key" rather than "storage failed".
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})
#: Longest file name component Linux file systems accept (NAME_MAX).
_NAME_MAX = 255


class _NoSuchKey(FileNotFoundError):
    """A key that cannot name a file inside the store (so nothing is stored under it)."""


def _absent(exc: OSError) -> bool:
    return isinstance(exc, FileNotFoundError) or exc.errno in _ABSENT


def guess_content_type(key: str) -> str:
    """Content type from a key's extension (keys are ours, so this is reliable)."""
    return _CONTENT_TYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")


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
        """The file behind key; _NoSuchKey when key cannot name a file inside the store."""
        try:
            raw = os.fsencode(key)
        except UnicodeEncodeError:
            raw = b"\0"  # a lone surrogate cannot name a file either
        if b"\0" in raw or any(len(part) > _NAME_MAX for part in raw.split(b"/")):
            raise _NoSuchKey(f"no object can be stored under {key[:80]!r}")
        # realpath, not Path.resolve: a symlink loop must be a missing object, not RuntimeError.
        path = Path(os.path.realpath(self.objects / key))
        if not path.is_relative_to(self.objects):
            raise _NoSuchKey(f"key leaves the store: {key[:80]!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        """The file behind key, or None when key cannot name one."""
        try:
            return self._path(key)
        except _NoSuchKey:
            return None

    def _tmp_path(self) -> Path:
        return self.tmp / f"{time.time():.0f}-{secrets.token_hex(8)}"

    def _rename_into(self, src: Path, dest: Path) -> None:
        """Rename src onto dest, creating its folders (again, if a delete just pruned them)."""
        for attempt in range(3):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, dest)
                return
            except FileNotFoundError:
                if attempt == 2 or not src.exists():
                    raise

    def _prune(self, folder: Path) -> None:
        """Remove folder and its parents while empty, up to the objects root (no husks left)."""
        while folder != self.objects and folder.is_relative_to(self.objects):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty, or gone already: a writer or another delete owns it
            folder = folder.parent

    def _install(self, tmp: Path, key: str) -> ObjectInfo:
        self._rename_into(tmp, self._path(key))
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
        try:
            path = self._path(key)
            st = path.stat()
        except OSError as exc:
            if _absent(exc):
                return None
            raise
        if not stat.S_ISREG(st.st_mode):
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

    def _open_read(self, key: str) -> int:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except OSError as exc:
            if _absent(exc):
                raise _NoSuchKey(key) from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _NoSuchKey(key)
        return fd

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Stream a byte range of the file."""
        try:
            fd = await self._run(self._open_read, key)
        except FileNotFoundError as exc:
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
        try:
            await self._run(self._download, key, path)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} does not exist") from exc

    def _download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except OSError as exc:
            if _absent(exc) or exc.errno == errno.EISDIR:
                raise _NoSuchKey(key) from exc
            raise

    def _delete(self, key: str) -> None:
        try:
            path = self._path(key)
            path.unlink()
        except OSError as exc:
            # Deleting what cannot exist is a no-op, like deleting a missing object.
            if not _absent(exc) and exc.errno not in (errno.EISDIR, errno.EPERM):
                raise
            return
        self._prune(path.parent)

    async def delete(self, key: str) -> None:
        """Unlink the file."""
        await self._run(self._delete, key)

    def _list(self, prefix: str) -> list[str]:
        try:
            base = self._path(prefix) if prefix else self.objects
        except _NoSuchKey:
            return []
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
        self._download(src_key, tmp)
        self._install(tmp, dst_key)

    async def copy(self, src_key: str, dst_key: str) -> None:
        """Copy through a temp file and an atomic rename."""
        try:
            await self._run(self._copy, src_key, dst_key)
        except FileNotFoundError as exc:
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
            raise UploadNotFound("the multipart upload no longer exists") from exc
        return writer

    def _list_parts(self, upload_id: str) -> list[PartInfo]:
        parts_dir = self._mp_dir(upload_id) / "parts"
        found: list[PartInfo] = []
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
        self._rename_into(data, dest)
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
