"""A raw-HTTP tus / IETF resumable-upload client for protocol tests (http.client, raw sockets).

Nothing here hides framing: each request is one fresh connection with exactly the headers the
test gives (plus Host, and Content-Length for a body), so tests see what a tus client sends.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.api import Api

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
PROBLEM = "https://iana.org/assignments/http-problem-types#"


@dataclass
class Answer:
    """One HTTP answer: status, headers (case-insensitive get), body bytes."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes = b""
    request: str = field(default="")

    def header(self, name: str) -> str | None:
        """One header's value, or None."""
        return self.headers.get(name)

    def int_header(self, name: str) -> int:
        """A header that must be a non-negative integer."""
        value = self.headers.get(name)
        assert value is not None and value.isdigit(), f"{self}: {name}={value!r}"
        return int(value)

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.request} -> {self.status} {self.body[:300]!r}"


def send(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    """One request on a new connection to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = dict(headers or {})
        if body or method in ("POST", "PATCH", "PUT"):
            sent.setdefault("Content-Length", str(len(body)))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, response.headers, data, f"{method} {path}")
    finally:
        conn.close()


def path_of(location: str) -> str:
    """The path of an upload URL (Location is absolute)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def metadata(**values: str) -> str:
    """An Upload-Metadata header value."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def checksum(algorithm: str, data: bytes) -> str:
    """An Upload-Checksum header value."""
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def get_ticket(api: Api, **params: Any) -> str:
    """A new ticket from POST /video/upload/ticket."""
    answer = api.call("POST", "/video/upload/ticket", params)
    assert answer.status_code == 200, answer.text
    return answer.json()["ticket"]


class Tus:
    """tus 1.0.0 (or IETF draft) requests on one server, authorized by a ticket (or not)."""

    def __init__(self, port: int, ticket: str | None = None, ietf: int | None = None) -> None:
        self.port = port
        self.ticket = ticket
        # An IETF-draft client sends Upload-Draft-Interop-Version instead of Tus-Resumable.
        self.ietf = ietf

    def headers(self, more: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """Default headers (Tus-Resumable or the draft version, Authorization), more on top."""
        out: dict[str, str | None] = {}
        if self.ietf is None:
            out.update(TUS)
        else:
            out["Upload-Draft-Interop-Version"] = str(self.ietf)
        if self.ticket:
            out["Authorization"] = f"Bearer {self.ticket}"
        out.update(more or {})
        return {k: v for k, v in out.items() if v is not None}

    def request(
        self, method: str, path: str, headers: dict | None = None, body: bytes = b""
    ) -> Answer:
        """Any request with the default headers."""
        return send(self.port, method, path_of(path), self.headers(headers), body)

    def create(
        self,
        length: int | None = None,
        body: bytes = b"",
        headers: dict | None = None,
        path: str = "/files/",
    ) -> Answer:
        """POST /files/ (Upload-Length when given, else deferred unless headers say more)."""
        more: dict[str, str] = {}
        if length is not None:
            more["Upload-Length"] = str(length)
        if body:
            more["Content-Type"] = OCTETS
        more.update(headers or {})
        return send(self.port, "POST", path, self.headers(more), body)

    def new(self, length: int | None = None, body: bytes = b"", **headers: str) -> str:
        """Create an upload that must succeed; returns its path."""
        answer = self.create(length, body, {k.replace("_", "-"): v for k, v in headers.items()})
        assert answer.status == 201, str(answer)
        location = answer.header("Location")
        assert location, str(answer)
        return path_of(location)

    def head(self, path: str, headers: dict | None = None) -> Answer:
        """HEAD an upload."""
        return self.request("HEAD", path, headers)

    def offset(self, path: str) -> int:
        """The upload's current offset (HEAD must answer 200)."""
        answer = self.head(path)
        assert answer.status == 200, str(answer)
        return answer.int_header("Upload-Offset")

    def patch(self, path: str, offset: int, data: bytes, headers: dict | None = None) -> Answer:
        """PATCH bytes at offset."""
        more = {"Content-Type": OCTETS, "Upload-Offset": str(offset), **(headers or {})}
        return self.request("PATCH", path, more, data)

    def upload(self, path: str, data: bytes, sizes: list[int], start: int = 0) -> Answer:
        """PATCH data[start:] in chunks of the given sizes (the last chunk takes the rest)."""
        offset = start
        answer: Answer | None = None
        for size in [*sizes, len(data)]:
            if offset >= len(data):
                break
            chunk = data[offset : offset + size]
            answer = self.patch(path, offset, chunk)
            assert answer.status == 204, str(answer)
            assert answer.int_header("Upload-Offset") == offset + len(chunk), str(answer)
            offset += len(chunk)
        assert answer is not None
        return answer

    def info(self, path: str) -> dict:
        """GET /files/<id> (200 JSON)."""
        answer = self.request("GET", path)
        assert answer.status == 200, str(answer)
        return answer.json()


def open_patch(
    port: int, path: str, headers: dict[str, str], total: int, first: bytes
) -> socket.socket:
    """A PATCH whose headers announce total bytes but of which only first is sent yet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"PATCH {path_of(path)} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {total}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return s


def wait_for(check, timeout: float = 15.0, interval: float = 0.05):
    """Poll check() until it returns something truthy; returns it (or the last value)."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def read_answer(s: socket.socket) -> Answer:
    """Read one HTTP answer from a raw socket (after the whole request was sent)."""
    response = http.client.HTTPResponse(s, method="PATCH")
    response.begin()
    data = response.read()
    return Answer(response.status, response.headers, data, "PATCH (raw)")


def error(answer: Answer, status: int, code: str) -> dict:
    """Assert a vasset error answer (JSON or problem+json) with this status and code."""
    assert answer.status == status, str(answer)
    body = answer.json()
    assert body.get("code") == code, str(answer)
    return body


#: What HEAD / PATCH of a terminated upload may answer (the spec allows either).
GONE = (404, 410)


def items(value: str | None) -> set[str]:
    """A comma-separated header as a set of lower-case items."""
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def md5(data: bytes) -> str:
    """MD5 hex of data."""
    return hashlib.md5(data).hexdigest()


def max_size(port: int) -> int:
    """Tus-Max-Size of the server."""
    return send(port, "OPTIONS", "/files/").int_header("Tus-Max-Size")


def assert_completed(api: Api, tus: Tus, path: str, data: bytes, answer: Answer | None = None):
    """The upload is complete with the server's MD5 of data, and so is its video."""
    if answer is not None:
        assert answer.header("Vasset-Md5") == md5(data), str(answer)
        assert answer.header("Vasset-Status") == "uploaded", str(answer)
    info = tus.info(path)
    assert (info["status"], info["md5"], info["offset"]) == ("uploaded", md5(data), len(data))
    media = api.call("GET", "/video/mediainfo", {"vid": info["vid"]}).json()
    assert (media["md5"], media["file_size"], media["status"]) == (md5(data), len(data), "uploaded")
    return info
