"""An OSS-protocol HTTP server that verifies signatures and answers the way Aliyun OSS does.

It speaks the subset of the OSS REST API that vasset and oss2 use: V1 and V4 header
signatures, V1/V4 presigned URLs, STS tokens, PostObject policies, objects, listings and
multipart uploads. Bodies (Content-Length or chunked) are streamed to files in a data
directory, so half-gigabyte uploads never sit in memory. A completed multipart object keeps
its part files as segments: completing never copies bytes.

The server can be stopped and restarted on the same port (state survives), and faults can be
injected per operation: ``server.fail_next(op="UploadPart", status=500, count=1)``.

This module holds the HTTP plumbing, the request parser and ``OssServer``; each concern is a
mixin in its own module: auth (signatures), objects, listing, post (PostObject), multipart,
faults; model has the records and errors, answers the XML and the response writer, body the
request body and form readers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from .answers import new_request_id, respond, respond_error
from .auth import AuthMixin
from .body import Body
from .faults import FaultsMixin
from .listing import ListingMixin
from .model import (
    ConnectionDropped,
    Credential,
    Fault,
    OssError,
    Request,
    StoredObject,
    Upload,
)
from .multipart import MultipartMixin
from .objects import ObjectsMixin
from .post import PostObjectMixin

__all__ = ["Fault", "OssError", "OssServer"]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], oss: OssServer) -> None:
        self.oss = oss
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        super().__init__(addr, Handler)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: Nagle plus delayed ACKs would add 40 ms
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``OssServer.requests`` instead."""

    def do_GET(self) -> None:
        self.server.oss._handle(self)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET


class OssServer(
    FaultsMixin, AuthMixin, ObjectsMixin, ListingMixin, PostObjectMixin, MultipartMixin
):
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
        self.credentials: dict[str, Credential] = {
            access_key_id: Credential(access_key_secret, security_token)
        }
        #: Seconds added to the server's clock (to test expiry and skew).
        self.clock_offset = 0.0
        #: Every request, as (HTTP method, OSS operation name), in arrival order.
        self.requests: list[tuple[str, str]] = []
        self.bytes_received = 0
        self._objects: dict[str, StoredObject] = {}
        self._uploads: dict[str, Upload] = {}
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
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
        self.credentials[access_key_id] = Credential(secret, token)

    def ops(self, name: str | None = None) -> list[str]:
        """Operation names seen so far (optionally only those equal to name)."""
        with self._lock:
            return [op for _, op in self.requests if name is None or op == name]

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
    def _handle(self, h: Handler) -> None:
        request_id = new_request_id()
        host = h.headers.get("Host", "")
        body: Body | None = None
        req: Request | None = None
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
            respond(h, request_id, status, headers, payload, body)
        except ConnectionDropped:
            h.close_connection = True
        except OssError as err:
            respond_error(h, request_id, err, host, body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _make_body(self, h: Handler) -> Body:
        chunked = "chunked" in h.headers.get("Transfer-Encoding", "").lower()
        length = h.headers.get("Content-Length")
        n = None
        if not chunked and length is not None:
            try:
                n = int(length)
            except ValueError:
                raise OssError(400, "InvalidArgument", "Invalid Content-Length.") from None
        return Body(h.rfile, n, chunked, self._count_bytes)

    def _count_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def _parse_request(self, h: Handler, host: str) -> Request:
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
        return Request(h.command, host, bucket, key, query, items, headers, raw_path)

    def _operation(self, req: Request) -> str:
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
