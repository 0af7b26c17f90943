"""The BlobStore seam: one small interface that every storage backend implements.

Backends trust their input: keys come from ``vasset.storage.keys`` (never from user text) and
the upload domain has already validated sizes and numbers. Every method that can block is
async; blocking clients (oss2, file I/O) are offloaded by the backend itself.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec


class ObjectInfo(msgspec.Struct, frozen=True):
    """What HEAD tells about a stored object."""

    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    mtime: float = 0.0


class PartInfo(msgspec.Struct, frozen=True):
    """One stored part of a multipart upload; etag is the part's lowercase MD5 hex."""

    number: int
    size: int
    etag: str


class PartWriter(abc.ABC):
    """Receives one part's bytes in order; the part exists only after ``commit``."""

    #: Set by open_part when the part was already stored: writes are dropped, commit
    #: returns the stored part unchanged (the first complete writer wins).
    existing: PartInfo | None = None

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None:
        """Append bytes to the part. Blocking: called from a worker thread, in order."""

    @abc.abstractmethod
    async def commit(self, md5_hex: str | None) -> PartInfo:
        """Make the part durable and visible; md5_hex is the caller's MD5 when it computed one."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Drop whatever was written; the part stays missing (or keeps its older bytes)."""


class BlobStore(abc.ABC):
    """Object storage: whole objects, multipart uploads, ranged reads, presigned URLs."""

    #: Smallest size of a non-last multipart part the backend accepts.
    min_part_size: int = 1
    #: Whether ``presign_get`` gives URLs that bypass the API.
    presigns: bool = False

    # whole objects
    @abc.abstractmethod
    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Store a local file under key (replacing any object there)."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        """Store small bytes under key."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """Describe an object, or None when it does not exist."""

    @abc.abstractmethod
    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Stream bytes [start, end] inclusive (end None: to the last byte)."""

    @abc.abstractmethod
    async def download_file(self, key: str, path: Path) -> None:
        """Copy an object to a local file (for FFmpeg input)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under prefix; returns how many were removed."""

    @abc.abstractmethod
    async def list_keys(self, prefix: str) -> list[str]:
        """Keys of every object under prefix."""

    @abc.abstractmethod
    async def copy(self, src_key: str, dst_key: str) -> None:
        """Copy an object inside the store (used to publish token-scoped outputs)."""

    # multipart uploads
    @abc.abstractmethod
    async def create_multipart(self, key: str) -> str:
        """Start a multipart upload for key and return its upload id."""

    @abc.abstractmethod
    async def open_part(
        self, key: str, upload_id: str, number: int, offset: int, size: int
    ) -> PartWriter:
        """Open a writer for part ``number`` that starts at byte ``offset`` of the object."""

    @abc.abstractmethod
    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """Every part stored so far, by number."""

    @abc.abstractmethod
    async def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo]) -> None:
        """Join the given parts into the object; idempotent once done."""

    @abc.abstractmethod
    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts; aborting a gone upload is not an error."""

    async def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str, float]]:
        """(key, upload_id, started_at) of unfinished multipart uploads, for the janitor."""
        return []

    # URLs
    def presign_get(self, key: str, expires_at: int, filename: str | None = None) -> str | None:
        """A URL that reads the object until expires_at, or None if the API must serve it."""
        return None

    def presign_part_put(
        self, key: str, upload_id: str, number: int, expires_at: int
    ) -> str | None:
        """A URL a client can PUT one part to directly, or None if unsupported."""
        return None

    def local_path(self, key: str) -> Path | None:
        """The file behind key when the store is a local disk, else None."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release pools and threads."""
