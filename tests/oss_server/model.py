"""What the OSS test server stores and the errors it answers: constants, records, OssError."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import crcmod
from oss2.crc64_combine import mkCombineFun

MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
MAX_SKEW_SECONDS = 15 * 60
CHUNK = 1 << 20
# Bodies of requests that fail before their body is read are drained up to this many bytes so
# the client sees the error response instead of a broken pipe; past it the connection is closed.
DRAIN_LIMIT = 64 << 20

# Headers an object keeps from its PUT and answers with on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "expires")
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}

# CRC-64/ECMA as OSS reports it in x-oss-hash-crc64ecma.
crc64_update = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
# CRC64 of A+B from crc(A), crc(B) and len(B): completing an upload never re-reads its parts.
crc64_combine = mkCombineFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


class OssError(Exception):
    """An OSS error answer: HTTP status, code, message and extra XML elements."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class ConnectionDropped(Exception):
    """The client went away (or a fault dropped it) in the middle of a request."""


def no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def no_such_upload(upload_id: str) -> OssError:
    return OssError(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        UploadId=upload_id,
    )


@dataclass
class Fault:
    """One injected failure: answer ``status``/``code``, or drop the connection."""

    op: str
    status: int = 500
    code: str = "InternalError"
    message: str = "We encountered an internal error. Please try again."
    count: int = 1
    drop: bool = False
    after_bytes: int = 0
    delay: float = 0.0


@dataclass
class Credential:
    secret: str
    token: str | None = None


@dataclass
class Segment:
    path: str
    size: int


@dataclass
class StoredObject:
    key: str
    segments: list[Segment]
    size: int
    etag: str
    crc64: int
    mtime: float
    content_type: str
    object_type: str = "Normal"
    content_md5: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Part:
    number: int
    path: str
    size: int
    etag: str
    crc64: int
    md5: bytes
    mtime: float


@dataclass
class Upload:
    upload_id: str
    key: str
    initiated: float
    content_type: str
    headers: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    host: str
    bucket: str
    key: str
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    headers: dict[str, str]
    raw_path: str


class ServerState:
    """The state every part of the server shares; OssServer fills it in."""

    bucket: str
    host: str
    port: int
    region: str
    crc64: bool
    data_dir: str
    credentials: dict[str, Credential]
    clock_offset: float
    requests: list[tuple[str, str]]
    bytes_received: int
    _objects: dict[str, StoredObject]
    _uploads: dict[str, Upload]
    _faults: list[Fault]
    _lock: threading.RLock

    @property
    def endpoint(self) -> str:
        """The base URL clients use (path-style, as oss2 does for IP endpoints)."""
        return f"http://{self.host}:{self.port}"

    def now(self) -> float:
        """The server's clock."""
        return time.time() + self.clock_offset
