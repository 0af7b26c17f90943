"""An OSS-protocol HTTP server that verifies signatures and answers the way Aliyun OSS does.

It speaks the subset of the OSS REST API that vasset and oss2 use: V1 and V4 header
signatures, V1/V4 presigned URLs, STS tokens, PostObject policies, objects, listings and
multipart uploads. Bodies (Content-Length or chunked) are streamed to files in a data
directory, so half-gigabyte uploads never sit in memory. A completed multipart object keeps
its part files as segments: completing never copies bytes.

The server can be stopped and restarted on the same port (state survives), and faults can be
injected per operation: ``server.fail_next(op="UploadPart", status=500, count=1)``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import hmac
import itertools
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit
from xml.sax.saxutils import escape

import crcmod
from oss2.crc64_combine import mkCombineFun

MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
MAX_SKEW_SECONDS = 15 * 60
_CHUNK = 1 << 20
# Bodies of requests that fail before their body is read are drained up to this many bytes so
# the client sees the error response instead of a broken pipe; past it the connection is closed.
_DRAIN_LIMIT = 64 << 20

# The sub-resources that V1 signatures cover (OSS's list, as oss2's auth.py carries it).
SUBRESOURCES = frozenset(
    [
        "acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle",
        "delete", "append", "tagging", "objectMeta", "uploadId", "partNumber", "security-token",
        "position", "img", "style", "styleName", "replication", "replicationProgress",
        "replicationLocation", "cname", "bucketInfo", "comp", "qos", "live", "status", "vod",
        "startTime", "endTime", "symlink", "x-oss-process", "response-content-type",
        "response-content-language", "response-expires", "response-cache-control",
        "response-content-disposition", "response-content-encoding", "udf", "udfName",
        "udfImage", "udfId", "udfImageDesc", "udfApplication", "udfApplicationLog",
        "restore", "callback", "callback-var", "policy", "stat", "encryption", "versions",
        "versioning", "versionId", "requestPayment", "x-oss-request-payer",
        "x-oss-traffic-limit", "qosInfo", "asyncFetch", "sequential", "inventory",
        "inventoryId", "continuation-token", "worm", "wormId", "wormExtend", "objectInfo",
        "group", "link", "transferAcceleration", "metaQuery", "resourceGroup",
        "x-oss-async-process", "regionList", "accessPoint", "accessPointPolicy",
    ]
)  # fmt: skip

# Headers an object keeps from its PUT and answers with on GET/HEAD.
_STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "expires")
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}

_crc64_fn = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


# CRC64 of A+B from crc(A), crc(B) and len(B): completing an upload never re-reads its parts.
_crc64_combine = mkCombineFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def _xml(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{body}</{root}>'.encode()


def _el(tag: str, value: Any) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


class OssError(Exception):
    """An OSS error answer: HTTP status, code, message and extra XML elements."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class _ConnectionDropped(Exception):
    """The client went away (or a fault dropped it) in the middle of a request."""


def _no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def _no_such_upload(upload_id: str) -> OssError:
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
class _Credential:
    secret: str
    token: str | None = None


@dataclass
class _Segment:
    path: str
    size: int


@dataclass
class _Object:
    key: str
    segments: list[_Segment]
    size: int
    etag: str
    crc64: int
    mtime: float
    content_type: str
    object_type: str = "Normal"
    content_md5: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    number: int
    path: str
    size: int
    etag: str
    crc64: int
    md5: bytes
    mtime: float


@dataclass
class _Upload:
    upload_id: str
    key: str
    initiated: float
    content_type: str
    headers: dict[str, str]
    parts: dict[int, _Part] = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    host: str
    bucket: str
    key: str
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    headers: dict[str, str]
    raw_path: str


class _Body:
    """Reads a request body delimited by Content-Length or chunked transfer encoding."""

    def __init__(
        self, rfile: Any, length: int | None, chunked: bool, on_bytes: Callable[[int], None]
    ) -> None:
        self._rfile = rfile
        self._left = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not self._left
        self._on_bytes = on_bytes
        self.limit: int | None = None  # fault injection: drop after this many bytes
        self.received = 0

    @property
    def done(self) -> bool:
        """Whether the whole body has been consumed."""
        return self._done

    def _raw(self, n: int) -> bytes:
        if self.limit is not None and self.received >= self.limit:
            raise _ConnectionDropped("fault: connection dropped mid-body")
        if self.limit is not None:
            n = min(n, self.limit - self.received)
        try:
            data = self._rfile.read(n)
        except OSError as exc:
            raise _ConnectionDropped(str(exc)) from exc
        if not data:
            raise _ConnectionDropped("client closed the connection mid-body")
        self.received += len(data)
        self._on_bytes(len(data))
        return data

    def _line(self) -> bytes:
        try:
            line = self._rfile.readline(65537)
        except OSError as exc:
            raise _ConnectionDropped(str(exc)) from exc
        if not line:
            raise _ConnectionDropped("client closed the connection mid-body")
        return line

    def read(self, n: int = _CHUNK) -> bytes:
        """Up to n bytes of the body; b'' once it is all read."""
        if self._done:
            return b""
        if not self._chunked:
            data = self._raw(min(n, self._left))
            self._left -= len(data)
            self._done = self._left == 0
            return data
        if self._chunk_left == 0:
            line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _ConnectionDropped("malformed chunk size") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):
                    pass  # trailers
                self._done = True
                return b""
            self._chunk_left = size
        data = self._raw(min(n, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._line()  # CRLF after the chunk data
        return data

    def read_all(self, limit: int = 16 << 20) -> bytes:
        """The whole (small) body."""
        out = bytearray()
        while chunk := self.read():
            out += chunk
            if len(out) > limit:
                raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the limit.")
        return bytes(out)

    def drain(self, limit: int) -> bool:
        """Read and discard up to limit bytes; True when the body was consumed."""
        seen = 0
        while not self._done and seen <= limit:
            seen += len(self.read())
        return self._done


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], oss: OssServer) -> None:
        self.oss = oss
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.live_lock:
            self.live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.live_lock:
            self.live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (or a stop that cuts them off) are normal here, not errors."""
        if not isinstance(sys.exc_info()[1], OSError | ValueError):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Cut every open connection, as a crashed server would."""
        with self.live_lock:
            socks = list(self.live)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: Nagle plus delayed ACKs would add 40 ms
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``OssServer.requests`` instead."""

    def do_GET(self) -> None:
        self.server.oss._handle(self)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET


class OssServer:
    """An in-process OSS endpoint for one bucket, on 127.0.0.1 and a (random) port."""

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        bucket: str,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        security_token: str | None = None,
        region: str = "cn-hangzhou",
        crc64: bool = True,
    ) -> None:
        self.bucket = bucket
        self.host = host
        self.port = port
        self.region = region
        self.crc64 = crc64
        self._own_dir = data_dir is None
        self.data_dir = str(data_dir) if data_dir else tempfile.mkdtemp(prefix="oss-server-")
        os.makedirs(os.path.join(self.data_dir, "blobs"), exist_ok=True)
        self.credentials: dict[str, _Credential] = {
            access_key_id: _Credential(access_key_secret, security_token)
        }
        #: Seconds added to the server's clock (to test expiry and skew).
        self.clock_offset = 0.0
        #: Every request, as (HTTP method, OSS operation name), in arrival order.
        self.requests: list[tuple[str, str]] = []
        self.bytes_received = 0
        self._objects: dict[str, _Object] = {}
        self._uploads: dict[str, _Upload] = {}
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def endpoint(self) -> str:
        """The base URL clients use (path-style, as oss2 does for IP endpoints)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server accepts connections now."""
        return self._httpd is not None

    def start(self) -> OssServer:
        """Listen (again) on the same port; stored objects and uploads survive a restart."""
        if self._httpd is not None:
            return self
        deadline = time.monotonic() + 5
        while True:
            try:
                httpd = _HTTPServer((self.host, self.port), self)
                break
            except OSError:
                # A restart can race the old socket's teardown; the port frees up quickly.
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections (in-flight requests fail mid-way)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        """Stop and remove the data directory if the server made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> OssServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # test controls
    def add_credentials(self, access_key_id: str, secret: str, token: str | None = None) -> None:
        """Accept another key pair (with an STS token when given)."""
        self.credentials[access_key_id] = _Credential(secret, token)

    def fail_next(
        self,
        op: str = "*",
        status: int = 500,
        count: int = 1,
        code: str | None = None,
        message: str | None = None,
        drop: bool = False,
        after_bytes: int = 0,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next ``count`` requests of ``op`` ("*": any) fail as asked."""
        # By default the fault answers ``status`` with an OSS error document after reading the
        # body (so the client sees the answer); ``drop`` cuts the connection after
        # ``after_bytes`` body bytes instead; ``delay`` sleeps first (for client timeouts).
        default_code = {503: "ServiceUnavailable", 500: "InternalError"}.get(status, "Injected")
        fault = Fault(
            op=op,
            status=status,
            code=code or default_code,
            message=message or "Injected fault.",
            count=count,
            drop=drop,
            after_bytes=after_bytes,
            delay=delay,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget faults not yet triggered."""
        with self._lock:
            self._faults.clear()

    def ops(self, name: str | None = None) -> list[str]:
        """Operation names seen so far (optionally only those equal to name)."""
        with self._lock:
            return [op for _, op in self.requests if name is None or op == name]

    def now(self) -> float:
        """The server's clock."""
        return time.time() + self.clock_offset

    def object_keys(self) -> list[str]:
        """Keys stored now."""
        with self._lock:
            return sorted(self._objects)

    def upload_ids(self) -> list[str]:
        """Ids of unfinished multipart uploads."""
        with self._lock:
            return list(self._uploads)

    def part_numbers(self, upload_id: str) -> list[int]:
        """Part numbers stored for an upload."""
        with self._lock:
            return sorted(self._uploads[upload_id].parts)

    def get_bytes(self, key: str) -> bytes:
        """An object's bytes (for assertions)."""
        with self._lock:
            obj = self._objects[key]
        return b"".join(self._read_segments(obj, 0, obj.size - 1))

    # request handling
    def _handle(self, h: _Handler) -> None:
        request_id = _request_id()
        host = h.headers.get("Host", "")
        body: _Body | None = None
        req: _Request | None = None
        op = "Unknown"
        try:
            body = self._make_body(h)
            req = self._parse_request(h, host)
            op = self._operation(req)
            with self._lock:
                self.requests.append((req.method, op))
            fault = self._take_fault(op)
            self._authenticate(req, op, h)
            if fault is not None:
                self._apply_fault(fault, body)
            handler = getattr(self, "_op_" + op, None)
            if handler is None:
                raise OssError(
                    400, "NotImplemented", "The operation is not supported by this test server."
                )
            status, headers, payload = handler(req, body)
            self._respond(h, request_id, status, headers, payload, body)
        except _ConnectionDropped:
            h.close_connection = True
        except OssError as err:
            self._respond_error(h, request_id, err, req, host, body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _make_body(self, h: _Handler) -> _Body:
        chunked = "chunked" in h.headers.get("Transfer-Encoding", "").lower()
        length = h.headers.get("Content-Length")
        n = None
        if not chunked and length is not None:
            try:
                n = int(length)
            except ValueError:
                raise OssError(400, "InvalidArgument", "Invalid Content-Length.") from None
        return _Body(h.rfile, n, chunked, self._count_bytes)

    def _count_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def _take_fault(self, op: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.op in ("*", op) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _apply_fault(self, fault: Fault, body: _Body) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            body.limit = fault.after_bytes
            while body.read():
                pass
            raise _ConnectionDropped("fault: connection dropped")
        raise OssError(fault.status, fault.code, fault.message)

    def _parse_request(self, h: _Handler, host: str) -> _Request:
        target = h.path
        if target.startswith(("http://", "https://")):
            # absolute-form (the client talks to us as a proxy): the URL names the host
            parts = urlsplit(target)
            host = parts.netloc
            target = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        items: list[tuple[str, str]] = []
        for piece in raw_query.split("&"):
            if not piece:
                continue
            name, _, value = piece.partition("=")
            items.append((unquote_plus(name), unquote_plus(value)))
        query = dict(items)
        headers: dict[str, str] = {}
        for name, value in h.headers.items():
            lname = name.lower()
            value = value.strip()
            headers[lname] = headers[lname] + "," + value if lname in headers else value
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hostname.startswith(self.bucket + "."):
            bucket, key = self.bucket, unquote(raw_path[1:])  # virtual-hosted style
        else:
            bucket_raw, _, key_raw = raw_path[1:].partition("/")
            bucket, key = unquote(bucket_raw), unquote(key_raw)
        if not bucket:
            raise OssError(403, "AccessDenied", "This test server serves one bucket only.")
        if bucket != self.bucket:
            raise OssError(
                404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket
            )
        return _Request(h.command, host, bucket, key, query, items, headers, raw_path)

    def _operation(self, req: _Request) -> str:
        q, m = req.query, req.method
        if not req.key:
            if m == "GET":
                if "uploads" in q:
                    return "ListMultipartUploads"
                return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            if m == "POST" and "delete" in q:
                return "DeleteMultipleObjects"
            if m == "POST" and "multipart/form-data" in req.headers.get("content-type", ""):
                return "PostObject"
            return "Bucket" + m.title()
        if m == "PUT":
            if "uploadId" in q or "partNumber" in q:
                return "UploadPartCopy" if "x-oss-copy-source" in req.headers else "UploadPart"
            return "CopyObject" if "x-oss-copy-source" in req.headers else "PutObject"
        if m == "GET":
            return "ListParts" if "uploadId" in q else "GetObject"
        if m == "HEAD":
            return "GetObjectMeta" if "objectMeta" in q else "HeadObject"
        if m == "POST":
            if "uploads" in q:
                return "InitiateMultipartUpload"
            if "uploadId" in q:
                return "CompleteMultipartUpload"
            return "PostObjectKey"
        if m == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
        return "Unknown"

    # responses
    def _respond(
        self,
        h: _Handler,
        request_id: str,
        status: int,
        headers: dict[str, str],
        payload: bytes | Iterator[bytes] | None,
        body: _Body | None,
    ) -> None:
        if body is not None and not body.done and not body.drain(_DRAIN_LIMIT):
            h.close_connection = True
        h.send_response(status)
        h.send_header("x-oss-request-id", request_id)
        h.send_header("Server", "AliyunOSS")
        h.send_header("Date", _http_date(time.time()))
        for name, value in headers.items():
            h.send_header(name, value)
        if isinstance(payload, bytes) or payload is None:
            data = payload or b""
            if "Content-Length" not in headers:
                h.send_header("Content-Length", str(len(data)))
            if h.close_connection:
                h.send_header("Connection", "close")
            h.end_headers()
            if h.command != "HEAD" and data:
                h.wfile.write(data)
            return
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD":
            return
        try:
            for chunk in payload:
                h.wfile.write(chunk)
        except OSError:
            h.close_connection = True
            raise _ConnectionDropped("client went away while reading") from None

    def _respond_error(
        self,
        h: _Handler,
        request_id: str,
        err: OssError,
        req: _Request | None,
        host: str,
        body: _Body | None,
    ) -> None:
        fields = _el("Code", err.code) + _el("Message", err.message)
        fields += _el("RequestId", request_id) + _el("HostId", host)
        for name, value in err.extra.items():
            fields += _el(name, value)
        payload = _xml("Error", fields)
        headers = {"Content-Type": "application/xml"}
        if h.command == "HEAD":
            # HEAD answers carry no body: OSS puts the error document in x-oss-err instead
            headers["x-oss-err"] = base64.b64encode(payload).decode()
            headers["Content-Length"] = "0"
            payload = b""
        try:
            self._respond(h, request_id, err.status, headers, payload, body)
        except (_ConnectionDropped, OSError):
            h.close_connection = True

    # authentication
    def _credential(self, access_key_id: str) -> _Credential:
        cred = self.credentials.get(access_key_id)
        if cred is None:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )
        return cred

    def _check_token(self, cred: _Credential, token: str | None) -> None:
        if cred.token is None:
            return
        if not token:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records. "
                "(an STS key needs its security token)",
            )
        if not hmac.compare_digest(token, cred.token):
            raise OssError(
                403, "InvalidSecurityToken", "The security token you provided is invalid."
            )

    def _check_skew(self, request_time: float) -> None:
        now = self.now()
        if abs(now - request_time) > MAX_SKEW_SECONDS:
            raise OssError(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=_iso(request_time),
                ServerTime=_iso(now),
                MaxAllowedSkewMilliseconds=MAX_SKEW_SECONDS * 1000,
            )

    def _authenticate(self, req: _Request, op: str, h: _Handler) -> None:
        auth = req.headers.get("authorization", "")
        q = req.query
        if op == "PostObject":
            return  # the form carries the signature; checked while parsing it
        if auth.startswith("OSS "):
            self._auth_v1_header(req, auth)
        elif auth.startswith("OSS4-HMAC-SHA256"):
            self._auth_v4_header(req, auth)
        elif auth:
            raise OssError(
                400, "InvalidArgument", "Authorization header is invalid.", Authorization=auth
            )
        elif "Signature" in q and "OSSAccessKeyId" in q:
            self._auth_v1_url(req)
        elif q.get("x-oss-signature-version") == "OSS4-HMAC-SHA256":
            self._auth_v4_url(req)
        else:
            raise OssError(
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
            )

    def _v1_resource(self, req: _Request) -> str:
        sub = sorted((k, v) for k, v in req.query_items if k in SUBRESOURCES)
        resource = f"/{req.bucket}/{req.key}"
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        return resource

    def _v1_string_to_sign(self, req: _Request, date: str) -> str:
        oss_headers = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-oss-"))
        canon = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        return "\n".join(
            [
                req.method,
                req.headers.get("content-md5", ""),
                req.headers.get("content-type", ""),
                date,
                canon + self._v1_resource(req),
            ]
        )

    def _v1_verify(self, secret: str, string_to_sign: str, provided: str) -> None:
        digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, provided):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=string_to_sign,
                SignatureProvided=provided,
            )

    def _request_date(self, req: _Request) -> float:
        raw = req.headers.get("x-oss-date") or req.headers.get("date")
        if not raw:
            raise OssError(403, "AccessDenied", "OSS authentication requires a valid Date.")
        try:
            return email.utils.parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError):
            raise OssError(
                403, "AccessDenied", "OSS authentication requires a valid Date."
            ) from None

    def _auth_v1_header(self, req: _Request, auth: str) -> None:
        access_key_id, sep, provided = auth[4:].strip().rpartition(":")
        if not sep:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        cred = self._credential(access_key_id)
        self._check_skew(self._request_date(req))
        self._check_token(cred, req.headers.get("x-oss-security-token"))
        date = req.headers.get("x-oss-date") or req.headers.get("date", "")
        self._v1_verify(cred.secret, self._v1_string_to_sign(req, date), provided)

    def _auth_v1_url(self, req: _Request) -> None:
        q = req.query
        cred = self._credential(q["OSSAccessKeyId"])
        try:
            expires = int(q.get("Expires", ""))
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid Expires.") from None
        self._v1_verify(cred.secret, self._v1_string_to_sign(req, str(expires)), q["Signature"])
        self._check_token(cred, q.get("security-token"))
        if expires < self.now():
            raise OssError(
                403,
                "AccessDenied",
                "Request has expired.",
                Expires=_iso(expires),
                ServerTime=_iso(self.now()),
            )

    @staticmethod
    def _v4_encode(text: str, keep_slash: bool) -> str:
        return quote(text.encode(), safe="-_.~" + ("/" if keep_slash else ""))

    def _v4_signature(
        self,
        req: _Request,
        secret: str,
        scope: str,
        date_time: str,
        additional: list[str],
        skip_params: frozenset[str] = frozenset(),
    ) -> tuple[str, str]:
        _, region, product = scope.split("/")[:3]
        params = sorted(
            (self._v4_encode(k, False), self._v4_encode(v, False))
            for k, v in req.query_items
            if k not in skip_params
        )
        canon_query = "&".join(f"{k}={v}" if v else k for k, v in params)
        signed = {"content-type", "content-md5", *additional}
        headers = sorted(
            (k, v) for k, v in req.headers.items() if k.startswith("x-oss-") or k in signed
        )
        canon_headers = "".join(f"{k}:{v}\n" for k, v in headers)
        canonical = "\n".join(
            [
                req.method,
                self._v4_encode(f"/{req.bucket}/{req.key}", True),
                canon_query,
                canon_headers,
                ";".join(sorted(additional)),
                req.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
            ]
        )
        string_to_sign = "\n".join(
            [
                "OSS4-HMAC-SHA256",
                date_time,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("aliyun_v4" + secret).encode()
        for part in (date_time[:8], region, product, "aliyun_v4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), string_to_sign

    def _v4_scope(self, credential: str, date_time: str) -> tuple[str, str]:
        access_key_id, _, scope = credential.partition("/")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aliyun_v4_request" or parts[2] != "oss":
            raise OssError(400, "InvalidArgument", "Invalid credential in Authorization header.")
        if parts[0] != date_time[:8]:
            raise OssError(400, "InvalidArgument", "Invalid signing date in Authorization header.")
        if parts[1] != self.region:
            raise OssError(
                400, "InvalidArgument", "Invalid signing region in Authorization header."
            )
        return access_key_id, scope

    @staticmethod
    def _v4_time(date_time: str) -> float:
        try:
            return datetime.strptime(date_time, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid x-oss-date.") from None

    def _v4_check(self, expected: str, provided: str, string_to_sign: str) -> None:
        if not hmac.compare_digest(expected, provided):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=string_to_sign,
                SignatureProvided=provided,
            )

    def _auth_v4_header(self, req: _Request, auth: str) -> None:
        fields: dict[str, str] = {}
        for item in auth[len("OSS4-HMAC-SHA256") :].split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        date_time = req.headers.get("x-oss-date", "")
        if "Credential" not in fields or "Signature" not in fields or not date_time:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        access_key_id, scope = self._v4_scope(fields["Credential"], date_time)
        cred = self._credential(access_key_id)
        self._check_skew(self._v4_time(date_time))
        self._check_token(cred, req.headers.get("x-oss-security-token"))
        additional = [h for h in fields.get("AdditionalHeaders", "").lower().split(";") if h]
        expected, sts = self._v4_signature(req, cred.secret, scope, date_time, additional)
        self._v4_check(expected, fields["Signature"], sts)

    def _auth_v4_url(self, req: _Request) -> None:
        q = req.query
        date_time = q.get("x-oss-date", "")
        access_key_id, scope = self._v4_scope(q.get("x-oss-credential", ""), date_time)
        cred = self._credential(access_key_id)
        additional = [h for h in q.get("x-oss-additional-headers", "").lower().split(";") if h]
        expected, sts = self._v4_signature(
            req, cred.secret, scope, date_time, additional, frozenset(["x-oss-signature"])
        )
        self._v4_check(expected, q.get("x-oss-signature", ""), sts)
        self._check_token(cred, q.get("x-oss-security-token"))
        try:
            expires = self._v4_time(date_time) + int(q.get("x-oss-expires", ""))
        except ValueError:
            raise OssError(403, "AccessDenied", "Invalid x-oss-expires.") from None
        if expires < self.now():
            raise OssError(
                403,
                "AccessDenied",
                "Request has expired.",
                Expires=_iso(expires),
                ServerTime=_iso(self.now()),
            )

    # storage helpers
    def _new_blob_path(self) -> str:
        return os.path.join(self.data_dir, "blobs", secrets.token_hex(16))

    def _spool(self, body: _Body, path: str) -> tuple[int, bytes, int]:
        """Stream the body into path; returns (size, md5 digest, crc64)."""
        md5 = hashlib.md5()
        crc = 0
        size = 0
        try:
            with open(path, "wb") as f:
                while chunk := body.read():
                    md5.update(chunk)
                    if self.crc64:
                        crc = _crc64_fn(chunk, crc)
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return size, md5.digest(), crc

    @staticmethod
    def _check_content_md5(req: _Request) -> bytes | None:
        value = req.headers.get("content-md5")
        if value is None:
            return None
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        return digest

    @staticmethod
    def _check_key(key: str) -> None:
        if not key or len(key.encode()) > 1023 or key.startswith(("/", "\\")):
            raise OssError(400, "InvalidObjectName", "The specified object is not valid.", Key=key)

    def _store_headers(self, req: _Request) -> dict[str, str]:
        return {
            k: v
            for k, v in req.headers.items()
            if k.startswith("x-oss-meta-") or k in _STORED_HEADERS
        }

    def _put_object(self, obj: _Object, forbid_overwrite: bool = False) -> None:
        with self._lock:
            old = self._objects.get(obj.key)
            if old is not None and forbid_overwrite:
                for seg in obj.segments:
                    with contextlib.suppress(OSError):
                        os.unlink(seg.path)
                raise OssError(409, "FileAlreadyExists", "The object you specified already exists.")
            self._objects[obj.key] = obj
        if old is not None:
            self._drop_segments(old.segments)

    @staticmethod
    def _drop_segments(segments: list[_Segment]) -> None:
        for seg in segments:
            with contextlib.suppress(OSError):
                os.unlink(seg.path)

    def _get(self, key: str) -> _Object:
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            raise _no_such_key(key)
        return obj

    def _upload(self, req: _Request) -> _Upload:
        upload_id = req.query.get("uploadId", "")
        with self._lock:
            up = self._uploads.get(upload_id)
        if up is None or up.key != req.key:
            raise _no_such_upload(upload_id)
        return up

    @staticmethod
    def _object_headers(obj: _Object) -> dict[str, str]:
        headers = {
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.etag}"',
            "Last-Modified": _http_date(obj.mtime),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": obj.object_type,
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": str(obj.crc64),
        }
        if obj.content_md5:
            headers["Content-MD5"] = obj.content_md5
        for name, value in obj.headers.items():
            headers[name.title() if not name.startswith("x-oss-") else name] = value
        return headers

    @staticmethod
    def _read_segments(obj: _Object, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end] inclusive of an object, segment by segment."""
        pos = 0
        for seg in obj.segments:
            seg_start, seg_end = pos, pos + seg.size - 1
            pos += seg.size
            if seg_end < start or seg_start > end:
                continue
            with open(seg.path, "rb") as f:
                f.seek(max(start, seg_start) - seg_start)
                left = min(end, seg_end) - max(start, seg_start) + 1
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

    # object operations
    def _op_PutObject(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        want_md5 = self._check_content_md5(req)
        path = self._new_blob_path()
        size, md5, crc = self._spool(body, path)
        if want_md5 is not None and want_md5 != md5:
            os.unlink(path)
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        obj = _Object(
            key=req.key,
            segments=[_Segment(path, size)],
            size=size,
            etag=md5.hex().upper(),
            crc64=crc,
            mtime=self.now(),
            content_type=req.headers.get("content-type") or "application/octet-stream",
            content_md5=base64.b64encode(md5).decode(),
            headers=self._store_headers(req),
        )
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        self._put_object(obj, forbid)
        return (
            200,
            {
                "ETag": f'"{obj.etag}"',
                "Content-MD5": obj.content_md5 or "",
                "x-oss-hash-crc64ecma": str(crc),
            },
            b"",
        )

    def _parse_range(
        self, req: _Request, size: int
    ) -> tuple[int, int] | None:  # None: the whole object with 200
        value = req.headers.get("range")
        if not value:
            return None
        standard = req.headers.get("x-oss-range-behavior", "").lower() == "standard"
        unit, _, spec = value.partition("=")
        if unit.strip() != "bytes" or "," in spec:
            if "," in spec:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None
        first, dash, last = spec.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                n = int(last)
                if n <= 0 or size == 0:
                    return None
                if n > size:
                    return (0, size - 1) if standard else None
                return size - n, size - 1
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if start >= size:
            if standard:
                raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None
        if start > end:
            return None
        if end >= size:
            if not standard:
                return None  # OSS ignores out-of-range ends unless asked for standard ranges
            end = size - 1
        return start, end

    def _op_GetObject(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        obj = self._get(req.key)
        headers = self._object_headers(obj)
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in req.query:
                headers[header] = req.query[param]
        rng = self._parse_range(req, obj.size)
        if rng is None:
            headers["Content-Length"] = str(obj.size)
            return 200, headers, self._read_segments(obj, 0, obj.size - 1)
        start, end = rng
        headers["Content-Length"] = str(end - start + 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        # a part of the object has no CRC of the whole; OSS still sends the object's
        return 206, headers, self._read_segments(obj, start, end)

    def _op_HeadObject(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        obj = self._get(req.key)
        headers = self._object_headers(obj)
        headers["Content-Length"] = str(obj.size)
        return 200, headers, b""

    def _op_GetObjectMeta(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        obj = self._get(req.key)
        return (
            200,
            {
                "ETag": f'"{obj.etag}"',
                "Content-Length": str(obj.size),
                "Last-Modified": _http_date(obj.mtime),
                "x-oss-last-access-time": _http_date(obj.mtime),
            },
            b"",
        )

    def _op_DeleteObject(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            obj = self._objects.pop(req.key, None)
        if obj is not None:
            self._drop_segments(obj.segments)
        return 204, {}, b""

    def _op_CopyObject(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        source = req.headers["x-oss-copy-source"]
        src_bucket, _, src_key = unquote(source.lstrip("/")).partition("/")
        src_key = src_key.split("?versionId=")[0]
        if src_bucket != self.bucket:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        src = self._get(src_key)
        segments = []
        for seg in src.segments:
            path = self._new_blob_path()
            try:
                os.link(seg.path, path)  # a hard link: a copy that costs nothing
            except OSError:
                shutil.copyfile(seg.path, path)
            segments.append(_Segment(path, seg.size))
        replace = req.headers.get("x-oss-metadata-directive", "COPY").upper() == "REPLACE"
        obj = _Object(
            key=req.key,
            segments=segments,
            size=src.size,
            etag=src.etag,
            crc64=src.crc64,
            mtime=self.now(),
            content_type=(req.headers.get("content-type") if replace else src.content_type)
            or "application/octet-stream",
            object_type=src.object_type,
            content_md5=src.content_md5,
            headers=self._store_headers(req) if replace else dict(src.headers),
        )
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        self._put_object(obj, forbid)
        xml = _xml(
            "CopyObjectResult", _el("ETag", f'"{obj.etag}"') + _el("LastModified", _iso(obj.mtime))
        )
        return 200, {"Content-Type": "application/xml", "ETag": f'"{obj.etag}"'}, xml

    def _list_params(self, req: _Request, default_max: int, name: str) -> int:
        raw = req.query.get(name) or str(default_max)
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if not 0 < n <= 1000:
            raise OssError(400, "InvalidArgument", f"Argument {name} must be between 1 and 1000.")
        return n

    def _list(
        self, prefix: str, delimiter: str, after: str, max_keys: int
    ) -> tuple[list[_Object], list[str], bool, str]:
        """Objects and common prefixes after ``after``: (objs, prefixes, truncated, next)."""
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix) and k > after)
            objects = {k: self._objects[k] for k in keys}
        objs: list[_Object] = []
        prefixes: list[str] = []
        last = ""
        for key in keys:
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if prefixes and prefixes[-1] == common:
                        continue
                    if common <= after:
                        continue
                    if len(objs) + len(prefixes) >= max_keys:
                        return objs, prefixes, True, last
                    prefixes.append(common)
                    last = common
                    continue
            if len(objs) + len(prefixes) >= max_keys:
                return objs, prefixes, True, last
            objs.append(objects[key])
            last = key
        return objs, prefixes, False, ""

    @staticmethod
    def _contents(objs: list[_Object], enc: Callable[[str], str], owner: bool = True) -> str:
        out = []
        for o in objs:
            item = _el("Key", enc(o.key)) + _el("LastModified", _iso(o.mtime))
            item += _el("ETag", f'"{o.etag}"') + _el("Type", o.object_type)
            item += _el("Size", o.size) + _el("StorageClass", "Standard")
            if owner:
                item += "<Owner>" + _el("ID", "1") + _el("DisplayName", "1") + "</Owner>"
            out.append(f"<Contents>{item}</Contents>")
        return "".join(out)

    @staticmethod
    def _encoder(req: _Request) -> Callable[[str], str]:
        if req.query.get("encoding-type") == "url":
            return lambda s: quote(s, safe="")
        return lambda s: s

    def _op_ListObjects(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        max_keys = self._list_params(req, 100, "max-keys")
        objs, prefixes, truncated, next_marker = self._list(prefix, delimiter, marker, max_keys)
        enc = self._encoder(req)
        x = _el("Name", self.bucket) + _el("Prefix", enc(prefix)) + _el("Marker", enc(marker))
        x += _el("MaxKeys", max_keys) + _el("Delimiter", enc(delimiter))
        if q.get("encoding-type") == "url":
            x += _el("EncodingType", "url")
        x += _el("IsTruncated", str(truncated).lower())
        if truncated:
            x += _el("NextMarker", enc(next_marker))
        x += self._contents(objs, enc)
        x += "".join(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, _xml("ListBucketResult", x)

    def _op_ListObjectsV2(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        token = q.get("continuation-token", "")
        after = q.get("start-after", "")
        if token:
            try:
                after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
            except (binascii.Error, ValueError):
                raise OssError(400, "InvalidArgument", "Invalid continuation-token.") from None
        max_keys = self._list_params(req, 100, "max-keys")
        objs, prefixes, truncated, nxt = self._list(prefix, delimiter, after, max_keys)
        enc = self._encoder(req)
        x = _el("Name", self.bucket) + _el("Prefix", enc(prefix))
        if token:
            x += _el("ContinuationToken", token)
        if "start-after" in q:
            x += _el("StartAfter", enc(q["start-after"]))
        x += _el("MaxKeys", max_keys) + _el("Delimiter", enc(delimiter))
        if q.get("encoding-type") == "url":
            x += _el("EncodingType", "url")
        x += _el("IsTruncated", str(truncated).lower())
        x += _el("KeyCount", len(objs) + len(prefixes))
        if truncated:
            x += _el("NextContinuationToken", base64.urlsafe_b64encode(nxt.encode()).decode())
        x += self._contents(objs, enc, owner=q.get("fetch-owner") == "true")
        x += "".join(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, _xml("ListBucketResult", x)

    def _op_DeleteMultipleObjects(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], bytes]:
        want_md5 = self._check_content_md5(req)
        if want_md5 is None:
            raise OssError(400, "InvalidDigest", "Missing Content-MD5 for DeleteMultipleObjects.")
        data = body.read_all()
        if hashlib.md5(data).digest() != want_md5:
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            raise OssError(
                400, "MalformedXML", "The XML you provided was not well-formed."
            ) from None
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        if len(keys) > 1000:
            raise OssError(400, "MalformedXML", "Too many objects to delete (at most 1000).")
        enc = self._encoder(req)
        out = ""
        for key in keys:
            with self._lock:
                obj = self._objects.pop(key, None)
            if obj is not None:
                self._drop_segments(obj.segments)
            if not quiet:
                out += f"<Deleted>{_el('Key', enc(key))}</Deleted>"
        if req.query.get("encoding-type") == "url":
            out += _el("EncodingType", "url")
        return 200, {"Content-Type": "application/xml"}, _xml("DeleteResult", out)

    # PostObject
    def _op_PostObject(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        ctype = req.headers.get("content-type", "")
        boundary = ""
        for piece in ctype.split(";")[1:]:
            name, _, value = piece.strip().partition("=")
            if name.lower() == "boundary":
                boundary = value.strip('"')
        if not boundary:
            raise OssError(
                400,
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        form, file_name, file_ctype, path, size, md5, crc = _parse_form(
            body, boundary.encode(), self._new_blob_path()
        )
        try:
            return self._post_object(req, form, file_name, file_ctype, path, size, md5, crc)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise

    def _post_object(
        self,
        req: _Request,
        form: dict[str, str],
        file_name: str,
        file_ctype: str,
        path: str,
        size: int,
        md5: bytes,
        crc: int,
    ) -> tuple[int, dict[str, str], bytes]:
        key = form.get("key", "").replace("${filename}", file_name)
        if "key" not in form:
            raise OssError(400, "InvalidArgument", "The key form field is required.")
        access_key_id = form.get("ossaccesskeyid")
        if access_key_id is None:
            raise OssError(
                403,
                "AccessDenied",
                "You have no right to access this object because of bucket acl.",
            )
        cred = self._credential(access_key_id)
        policy_b64 = form.get("policy", "")
        if not policy_b64:
            raise OssError(400, "InvalidArgument", "Missing policy form field.")
        signature = form.get("signature", "")
        self._check_token(cred, form.get("x-oss-security-token"))
        digest = hmac.new(cred.secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                StringToSign=policy_b64,
                SignatureProvided=signature,
            )
        fields = dict(form)
        fields["key"] = key
        fields["bucket"] = self.bucket
        fields.setdefault("content-type", file_ctype)
        self._check_policy(policy_b64, fields, size)
        self._check_key(key)
        obj = _Object(
            key=key,
            segments=[_Segment(path, size)],
            size=size,
            etag=md5.hex().upper(),
            crc64=crc,
            mtime=self.now(),
            content_type=fields.get("content-type") or "application/octet-stream",
            content_md5=base64.b64encode(md5).decode(),
            headers={
                k: v for k, v in form.items() if k.startswith("x-oss-meta-") or k in _STORED_HEADERS
            },
        )
        self._put_object(obj)
        headers = {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(crc)}
        status = form.get("success_action_status", "204")
        if status == "201":
            location = f"{self.endpoint}/{self.bucket}/{quote(key)}"
            x = _el("Location", location) + _el("Bucket", self.bucket)
            x += _el("Key", key) + _el("ETag", f'"{obj.etag}"')
            headers["Content-Type"] = "application/xml"
            return 201, headers, _xml("PostResponse", x)
        return (200 if status == "200" else 204), headers, b""

    def _check_policy(self, policy_b64: str, fields: dict[str, str], size: int) -> None:
        def invalid(message: str) -> OssError:
            return OssError(400, "InvalidPolicyDocument", f"Invalid Policy: {message}")

        try:
            policy = json.loads(base64.b64decode(policy_b64, validate=True))
        except (binascii.Error, ValueError):
            raise invalid("Invalid JSON.") from None
        if not isinstance(policy, dict):
            raise invalid("Invalid JSON.")
        unknown = set(policy) - {"expiration", "conditions"}
        if unknown:
            raise invalid(f"Unexpected field {sorted(unknown)[0]}.")
        if "expiration" not in policy:
            raise invalid("Policy missing expiration.")
        if "conditions" not in policy or not isinstance(policy["conditions"], list):
            raise invalid("Policy missing conditions.")
        expiration = policy["expiration"]
        if not isinstance(expiration, str):
            raise invalid("Invalid expiration.")
        try:
            exp = datetime.strptime(expiration.replace(".000Z", "Z"), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise invalid("Invalid expiration.") from None
        if exp.replace(tzinfo=UTC).timestamp() < self.now():
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")

        def failed(cond: Any) -> OssError:
            return OssError(
                403,
                "AccessDenied",
                f"Invalid according to Policy: Policy Condition failed: {json.dumps(cond)}",
            )

        length_range: tuple[int, int] | None = None
        for cond in policy["conditions"]:
            if isinstance(cond, dict):
                if len(cond) != 1:
                    raise invalid(
                        "Invalid Simple-Condition: Simple-Conditions must have exactly one "
                        "property specified."
                    )
                ((name, value),) = cond.items()
                if fields.get(name.lower()) != value:
                    raise failed(cond)
                continue
            if not isinstance(cond, list) or not cond or not isinstance(cond[0], str):
                raise invalid("Invalid condition.")
            kind = cond[0].lower()
            if kind == "content-length-range":
                if (
                    len(cond) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in cond[1:])
                    or cond[1] < 0
                    or cond[2] < cond[1]
                ):
                    raise invalid("Invalid content-length-range.")
                length_range = (cond[1], cond[2])
                continue
            if len(cond) != 3 or not isinstance(cond[1], str) or not cond[1].startswith("$"):
                raise invalid(f"Invalid condition: {json.dumps(cond)}")
            actual = fields.get(cond[1][1:].lower(), "")
            expected = cond[2]
            if kind == "eq":
                ok = isinstance(expected, str) and actual == expected
            elif kind == "starts-with":
                ok = isinstance(expected, str) and actual.startswith(expected)
            elif kind in ("in", "not-in"):
                if not isinstance(expected, list):
                    raise invalid(f"Invalid condition: {json.dumps(cond)}")
                ok = (actual in expected) == (kind == "in")
            else:
                raise invalid(f"Unknown condition: {cond[0]}")
            if not ok:
                raise failed(cond)
        if length_range is not None:
            if size > length_range[1]:
                raise OssError(
                    400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
                )
            if size < length_range[0]:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                )

    # multipart uploads
    def _op_InitiateMultipartUpload(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], bytes]:
        self._check_key(req.key)
        up = _Upload(
            upload_id=uuid.uuid4().hex.upper(),
            key=req.key,
            initiated=self.now(),
            content_type=req.headers.get("content-type") or "application/octet-stream",
            headers=self._store_headers(req),
        )
        with self._lock:
            self._uploads[up.upload_id] = up
        x = _el("Bucket", self.bucket) + _el("Key", req.key) + _el("UploadId", up.upload_id)
        return 200, {"Content-Type": "application/xml"}, _xml("InitiateMultipartUploadResult", x)

    def _op_UploadPart(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        try:
            number = int(req.query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PART_NUMBER:
            raise OssError(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive.",
                ArgumentName="partNumber",
            )
        up = self._upload(req)
        want_md5 = self._check_content_md5(req)
        path = self._new_blob_path()
        size, md5, crc = self._spool(body, path)
        if want_md5 is not None and want_md5 != md5:
            os.unlink(path)
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        part = _Part(number, path, size, md5.hex().upper(), crc, md5, self.now())
        with self._lock:
            live = self._uploads.get(up.upload_id)
            old = live.parts.get(number) if live is not None else None
            if live is not None:
                live.parts[number] = part
        if live is None:
            os.unlink(path)
            raise _no_such_upload(up.upload_id)  # aborted or completed while we read the body
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old.path)
        headers = {
            "ETag": f'"{part.etag}"',
            "Content-MD5": base64.b64encode(md5).decode(),
            "x-oss-hash-crc64ecma": str(crc),
        }
        return 200, headers, b""

    def _op_ListParts(self, req: _Request, body: _Body) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        max_parts = self._list_params(req, 1000, "max-parts")
        try:
            marker = int(req.query.get("part-number-marker") or 0)
        except ValueError:
            raise OssError(400, "InvalidArgument", "Invalid part-number-marker.") from None
        with self._lock:
            parts = sorted(
                (p for p in up.parts.values() if p.number > marker), key=lambda p: p.number
            )
        page = parts[:max_parts]
        truncated = len(parts) > max_parts
        x = _el("Bucket", self.bucket) + _el("Key", up.key) + _el("UploadId", up.upload_id)
        x += _el("PartNumberMarker", marker)
        x += _el("NextPartNumberMarker", page[-1].number if page else marker)
        x += _el("MaxParts", max_parts) + _el("IsTruncated", str(truncated).lower())
        for p in page:
            x += (
                "<Part>"
                + _el("PartNumber", p.number)
                + _el("LastModified", _iso(p.mtime))
                + _el("ETag", f'"{p.etag}"')
                + _el("HashCrc64ecma", p.crc64)
                + _el("Size", p.size)
                + "</Part>"
            )
        return 200, {"Content-Type": "application/xml"}, _xml("ListPartsResult", x)

    def _op_CompleteMultipartUpload(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        complete_all = req.headers.get("x-oss-complete-all", "").lower() == "yes"
        data = body.read_all()
        if complete_all:
            if data:
                raise OssError(
                    400, "InvalidArgument", "Should not specify both complete all header and body."
                )
            with self._lock:
                wanted = [(n, up.parts[n].etag) for n in sorted(up.parts)]
        else:
            try:
                root = ET.fromstring(data)
            except ET.ParseError:
                raise OssError(
                    400, "MalformedXML", "The XML you provided was not well-formed."
                ) from None
            wanted = []
            for node in root.findall("Part"):
                try:
                    number = int(node.findtext("PartNumber") or "")
                except ValueError:
                    raise OssError(
                        400, "MalformedXML", "The XML you provided was not well-formed."
                    ) from None
                wanted.append((number, (node.findtext("ETag") or "").strip().strip('"')))
            if not wanted:
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        numbers = [n for n, _ in wanted]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise OssError(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part "
                "number.",
                UploadId=up.upload_id,
            )
        with self._lock:
            if self._uploads.get(up.upload_id) is not up:
                raise _no_such_upload(up.upload_id)
            chosen: list[_Part] = []
            for number, etag in wanted:
                part = up.parts.get(number)
                if part is None or part.etag.upper() != etag.upper():
                    raise OssError(
                        400,
                        "InvalidPart",
                        "One or more of the specified parts could not be found or the specified "
                        "entity tag might not have matched the part's entity tag.",
                        UploadId=up.upload_id,
                        PartNumber=number,
                        ETag=etag,
                    )
                chosen.append(part)
            for part in chosen[:-1]:
                if part.size < MIN_PART_SIZE:
                    raise OssError(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size.",
                        PartNumber=part.number,
                        MinSizeAllowed=MIN_PART_SIZE,
                        ProposedSize=part.size,
                    )
            del self._uploads[up.upload_id]
        leftovers = [p for n, p in up.parts.items() if n not in set(numbers)]
        self._drop_segments([_Segment(p.path, p.size) for p in leftovers])
        crc = 0
        for part in chosen:
            crc = _crc64_combine(crc, part.crc64, part.size) if self.crc64 else 0
        etag = hashlib.md5(b"".join(p.md5 for p in chosen)).hexdigest().upper()
        obj = _Object(
            key=up.key,
            segments=[_Segment(p.path, p.size) for p in chosen],
            size=sum(p.size for p in chosen),
            etag=f"{etag}-{len(chosen)}",
            crc64=crc,
            mtime=self.now(),
            content_type=up.content_type,
            object_type="Multipart",
            headers=up.headers,
        )
        self._put_object(obj)
        enc = self._encoder(req)
        x = ""
        if req.query.get("encoding-type") == "url":
            x += _el("EncodingType", "url")
        x += _el("Location", f"{self.endpoint}/{self.bucket}/{quote(up.key)}")
        x += _el("Bucket", self.bucket) + _el("Key", enc(up.key)) + _el("ETag", f'"{obj.etag}"')
        headers = {
            "Content-Type": "application/xml",
            "ETag": f'"{obj.etag}"',
            "x-oss-hash-crc64ecma": str(crc),
        }
        return 200, headers, _xml("CompleteMultipartUploadResult", x)

    def _op_AbortMultipartUpload(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], bytes]:
        up = self._upload(req)
        with self._lock:
            if self._uploads.pop(up.upload_id, None) is None:
                raise _no_such_upload(up.upload_id)
        self._drop_segments([_Segment(p.path, p.size) for p in up.parts.values()])
        return 204, {}, b""

    def _op_ListMultipartUploads(
        self, req: _Request, body: _Body
    ) -> tuple[int, dict[str, str], bytes]:
        q = req.query
        prefix = q.get("prefix", "")
        key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
        delimiter = q.get("delimiter", "")
        max_uploads = self._list_params(req, 1000, "max-uploads")
        with self._lock:
            ups = sorted(
                (u for u in self._uploads.values() if u.key.startswith(prefix)),
                key=lambda u: (u.key, u.initiated, u.upload_id),
            )
        if key_marker:
            ups = [
                u
                for u in ups
                if u.key > key_marker
                or (id_marker and u.key == key_marker and u.upload_id > id_marker)
            ]
        page: list[_Upload] = []
        prefixes: list[str] = []
        truncated = False
        for u in ups:
            if delimiter:
                idx = u.key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = u.key[: idx + len(delimiter)]
                    if common not in prefixes:
                        prefixes.append(common)
                    continue
            if len(page) >= max_uploads:
                truncated = True
                break
            page.append(u)
        enc = self._encoder(req)
        x = _el("Bucket", self.bucket) + _el("KeyMarker", enc(key_marker))
        x += _el("UploadIdMarker", id_marker)
        x += _el("NextKeyMarker", enc(page[-1].key) if page else "")
        x += _el("NextUploadIdMarker", page[-1].upload_id if page else "")
        x += _el("Delimiter", enc(delimiter)) + _el("Prefix", enc(prefix))
        x += _el("MaxUploads", max_uploads) + _el("IsTruncated", str(truncated).lower())
        if q.get("encoding-type") == "url":
            x += _el("EncodingType", "url")
        for u in page:
            x += (
                "<Upload>"
                + _el("Key", enc(u.key))
                + _el("UploadId", u.upload_id)
                + _el("StorageClass", "Standard")
                + _el("Initiated", _iso(u.initiated))
                + "</Upload>"
            )
        x += "".join(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)
        return 200, {"Content-Type": "application/xml"}, _xml("ListMultipartUploadsResult", x)


def _parse_form(
    body: _Body, boundary: bytes, path: str
) -> tuple[dict[str, str], str, str, str, int, bytes, int]:
    """Stream a form: (lower-cased fields, filename, file type, path, size, md5, crc64)."""
    # small fields are kept in memory, the ``file`` part goes to path; OSS requires the file to
    # be the last field, so everything after it is ignored
    malformed = OssError(
        400,
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )
    delim = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # so the first boundary matches the same delimiter
    fields: dict[str, str] = {}

    def fill() -> bool:
        chunk = body.read()
        buf.extend(chunk)
        return bool(chunk)

    def read_until(marker: bytes, limit: int = 1 << 20) -> bytes:
        while (idx := buf.find(marker)) < 0:
            if len(buf) > limit or not fill():
                raise malformed
        out = bytes(buf[:idx])
        del buf[: idx + len(marker)]
        return out

    read_until(delim)
    while True:
        while len(buf) < 2 and fill():
            pass
        if buf[:2] == b"--":
            raise malformed  # closing boundary before any file part
        read_until(b"\r\n")
        raw_headers = read_until(b"\r\n\r\n", 64 << 10).decode("utf-8", "replace")
        disposition, ctype = "", ""
        for line in raw_headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
            elif name.strip().lower() == "content-type":
                ctype = value.strip()
        params: dict[str, str] = {}
        for piece in disposition.split(";")[1:]:
            pname, _, pvalue = piece.strip().partition("=")
            params[pname.lower()] = pvalue.strip().strip('"')
        field_name = params.get("name", "")
        if field_name.lower() != "file":
            fields[field_name.lower()] = read_until(delim, 1 << 20).decode("utf-8", "replace")
            continue
        md5 = hashlib.md5()
        crc = 0
        size = 0
        keep = len(delim)
        try:
            with open(path, "wb") as f:
                while True:
                    idx = buf.find(delim)
                    if idx >= 0:
                        data = bytes(buf[:idx])
                        del buf[: idx + len(delim)]
                    else:
                        data = bytes(buf[:-keep]) if len(buf) > keep else b""
                        del buf[: len(data)]
                    if data:
                        md5.update(data)
                        crc = _crc64_fn(data, crc)
                        f.write(data)
                        size += len(data)
                    if idx >= 0:
                        break
                    if not fill():
                        raise malformed
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        # whatever follows the file part (the closing "--" and epilogue) is read and ignored
        while fill():
            pass
        return fields, params.get("filename", ""), ctype, path, size, md5.digest(), crc
