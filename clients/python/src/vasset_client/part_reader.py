"""Reading a file for upload: each part read once and hashed as it is read, whole-file MD5s."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

from vasset_client import errors
from vasset_client.parallel import Stopped
from vasset_client.progress import Progress

__all__ = ["BLOCK", "BUFFER_MAX", "FileMD5", "hash_range", "read_part", "stream_range"]

#: Bytes per read(): big enough that per-call costs vanish, small enough to bound a stream.
BLOCK = 1 << 20
#: Parts up to this size are read into memory once, hashed while read, and sent from memory;
#: larger parts are hashed in one pass and streamed from the file in a second.
BUFFER_MAX = 64 << 20


def read_part(path: Path, offset: int, length: int) -> tuple[list[bytes], str]:
    """The part's bytes as BLOCK-sized blocks and their MD5 hex, in one pass over the file."""
    md5 = hashlib.md5()
    blocks = []
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            block = f.read(min(BLOCK, left))
            if not block:
                raise errors.FileChanged(f"{path} became shorter during the upload")
            md5.update(block)
            blocks.append(block)
            left -= len(block)
    return blocks, md5.hexdigest()


def hash_range(path: Path, offset: int, length: int) -> str:
    """MD5 hex of the bytes [offset, offset+length) of the file (a part too big to hold)."""
    md5 = hashlib.md5()
    left = length
    with open(path, "rb") as f:
        f.seek(offset)
        while left:
            chunk = f.read(min(BLOCK, left))
            if not chunk:
                raise errors.FileChanged(f"{path} became shorter during the upload")
            md5.update(chunk)
            left -= len(chunk)
    return md5.hexdigest()


def stream_range(path: Path, offset: int, length: int, stop: threading.Event) -> Iterator[bytes]:
    """The bytes [offset, offset+length) of the file, BLOCK by BLOCK, until `stop` is set."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            if stop.is_set():
                raise Stopped()
            block = f.read(min(BLOCK, left))
            if not block:
                raise errors.FileChanged(f"{path} became shorter during the upload")
            left -= len(block)
            yield block


class FileMD5:
    """The whole file's MD5 (instant upload's hash, computed before init)."""

    def __init__(self, path: Path, size: int, on_progress: Progress | None = None) -> None:
        self.path = path
        self.size = size
        self.on_progress = on_progress

    def compute(self) -> str:
        """MD5 hex of the whole file, streamed; FileChanged when its size is not the expected."""
        md5 = hashlib.md5()
        done = 0
        with open(self.path, "rb") as f:
            while chunk := f.read(BLOCK):
                md5.update(chunk)
                done += len(chunk)
                if self.on_progress is not None:
                    self.on_progress(done, self.size)
        if done != self.size:
            raise errors.FileChanged(f"{self.path} changed size while it was hashed")
        return md5.hexdigest()
