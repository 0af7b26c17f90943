"""tus 1.0.0 over raw sockets (bodies a test can cut, stall or sendfile), and own servers."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.api import Api, b64name
from tests.support.server import ROOT, ServerProcess

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


def md5(data: bytes) -> str:
    """MD5 hex of data."""
    return hashlib.md5(data).hexdigest()


def meta(name: str) -> dict[str, str]:
    """An Upload-Metadata header naming the file."""
    return {"Upload-Metadata": f"filename {b64name(name)}"}


def files_get(port: int, path: str, tkt: str | None) -> dict:
    """GET /files/<id>: the upload's state as JSON."""
    a = request(port, "GET", path, tus_headers(tkt))
    assert a.status == 200, a
    return a.json()


def wait_offset(port: int, path: str, tkt: str | None, want: int, wait: float = 10) -> int:
    """The offset HEAD reports, polled until it is want (or wait seconds passed)."""
    deadline = time.monotonic() + wait
    while (got := offset_of(port, path, tkt)) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def assert_completed(final: Answer, data: bytes, vid: str) -> None:
    """The 204 that completed an upload carries the video, its MD5 and status uploaded."""
    assert final.status == 204, final
    assert int(final.headers["upload-offset"]) == len(data), final
    assert final.headers["vasset-md5"] == md5(data), final
    assert final.headers["vasset-status"] == "uploaded", final
    assert final.headers["vasset-vid"] == vid, final


def assert_gone(port: int, path: str, tkt: str | None) -> None:
    """HEAD answers 404/410 and a PATCH is refused with 404/410."""
    a = head(port, path, tkt)
    assert a.status in (404, 410), a
    p = patch(port, path, tkt, 0, b"late bytes")
    assert p.status in (404, 410), p


def own_server(env: dict[str, str], tmp_path: Path, name: str, **extra: str) -> ServerProcess:
    """A started `vasset serve` of the calling test's own, logging to tmp_path/name.log."""
    return ServerProcess({**env, **extra}, log_path=tmp_path / f"{name}.log").start()


def api_of(srv: ServerProcess, creds: dict) -> Api:
    """A signing client of srv for an app's credentials."""
    return Api(srv.url, creds["app_key"], creds["app_secret"])


def run_janitor(env: dict[str, str]) -> dict:
    """One `vasset janitor` pass under its own lock prefix (no other test's pass skips it)."""
    jan_env = {**env, "VASSET_REDIS_PREFIX": env["VASSET_REDIS_PREFIX"] + "tj:"}
    out = subprocess.run(
        [sys.executable, "-m", "vasset", "janitor"],
        env={**os.environ, **jan_env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
