"""tus 1.0.0 over raw sockets: requests whose bodies a test can cut, stall or sendfile."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.api import Api

OCTETS = "application/offset+octet-stream"


@dataclass
class Answer:
    """One HTTP answer: status, lower-cased headers, body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.headers} {self.body[:500]!r}"


def ticket(api: Api, **params: Any) -> str:
    """A fresh upload ticket of api's app."""
    r = api.call("POST", "/video/upload/ticket", params)
    assert r.status_code == 200, r.text
    return r.json()["ticket"]


def tus_headers(tkt: str | None, **extra: str) -> dict[str, str]:
    """Tus-Resumable and the ticket, plus extra headers."""
    headers = {"Tus-Resumable": "1.0.0", **extra}
    if tkt:
        headers["Authorization"] = f"Bearer {tkt}"
    return headers


def connect(port: int, timeout: float = 60) -> socket.socket:
    """A connected socket to 127.0.0.1:port."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_head(
    sock: socket.socket, method: str, path: str, headers: dict[str, str], length: int | None
) -> None:
    """Send a request line and headers (Content-Length when length is given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def read_answer(sock: socket.socket, bodiless: bool = False) -> Answer:
    """Read one answer (Content-Length, chunked or until close) and close the socket."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before an answer: {buf!r}")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if bodiless or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            want = int(headers["content-length"])
            while len(rest) < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body = rest[:want]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunk(sock, rest)
        else:
            while chunk := sock.recv(65536):
                rest += chunk
            body = rest
        return Answer(status, headers, body)
    finally:
        sock.close()


def _dechunk(sock: socket.socket, rest: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("chunked body cut")
            rest += chunk
        if size == 0:
            return body
        body += rest[:size]
        rest = rest[size + 2 :]


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    """One whole request on a fresh connection."""
    sock = connect(port)
    send_head(sock, method, path, headers or {}, len(body) if body or method != "HEAD" else None)
    if body:
        sock.sendall(body)
    return read_answer(sock, bodiless=method == "HEAD")


def path_of(location: str) -> str:
    """The path of an (absolute) upload URL."""
    return urlsplit(location).path


def create(port: int, tkt: str | None, length: int, **extra: str) -> tuple[str, Answer]:
    """POST /files/ for an upload of length bytes; returns (upload path, answer)."""
    headers = tus_headers(tkt, **{"Upload-Length": str(length), **extra})
    a = request(port, "POST", "/files/", headers)
    assert a.status == 201, a
    return path_of(a.headers["location"]), a


def head(port: int, path: str, tkt: str | None) -> Answer:
    """HEAD an upload."""
    return request(port, "HEAD", path, tus_headers(tkt))


def offset_of(port: int, path: str, tkt: str | None) -> int:
    """The offset HEAD reports (asserting 200)."""
    a = head(port, path, tkt)
    assert a.status == 200, a
    return int(a.headers["upload-offset"])


def patch_headers(tkt: str | None, offset: int) -> dict[str, str]:
    """Headers of a PATCH at offset."""
    return tus_headers(tkt, **{"Content-Type": OCTETS, "Upload-Offset": str(offset)})


def patch(port: int, path: str, tkt: str | None, offset: int, body: bytes) -> Answer:
    """One whole PATCH."""
    return request(port, "PATCH", path, patch_headers(tkt, offset), body)


def start_patch(
    port: int, path: str, tkt: str | None, offset: int, length: int, first: bytes
) -> socket.socket:
    """A PATCH announcing length bytes of which only first is sent; the caller goes on."""
    sock = connect(port)
    send_head(sock, "PATCH", path, patch_headers(tkt, offset), length)
    sock.sendall(first)
    return sock


def patch_file(
    port: int, path: str, tkt: str | None, offset: int, fname: os.PathLike, start: int, count: int
) -> Answer:
    """A PATCH whose body is count bytes of a file from start, sent with sendfile(2)."""
    sock = connect(port, timeout=300)
    send_head(sock, "PATCH", path, patch_headers(tkt, offset), count)
    with open(fname, "rb") as f:
        sent = sock.sendfile(f, start, count)
    assert sent == count
    return read_answer(sock)


def send_all(
    port: int, path: str, tkt: str | None, data: bytes, offset: int, sizes: list[int]
) -> Answer:
    """PATCH data[offset:] in chunks of the given sizes (the last repeated); the final answer."""
    answer = Answer(0)
    i = 0
    while offset < len(data):
        size = sizes[min(i, len(sizes) - 1)]
        answer = patch(port, path, tkt, offset, data[offset : offset + size])
        assert answer.status == 204, answer
        assert int(answer.headers["upload-offset"]) == min(offset + size, len(data)), answer
        offset = int(answer.headers["upload-offset"])
        i += 1
    return answer


def patch_when_unlocked(
    port: int, path: str, tkt: str | None, offset: int, body: bytes, wait: float = 30
) -> Answer:
    """A PATCH retried while the upload answers 423 (a dead request's lock); the answer."""
    deadline = time.monotonic() + wait
    while True:
        a = patch(port, path, tkt, offset, body)
        if a.status != 423 or time.monotonic() > deadline:
            return a
        time.sleep(0.25)
