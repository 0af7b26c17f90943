"""A recording HTTP proxy on 127.0.0.1 in front of a vasset server, with injected failures."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

_FORWARD = ("content-type", "content-length", "content-range", "user-agent")
_BACK = ("content-type", "x-request-id", "retry-after")


@dataclass
class Record:
    """One request that went through the proxy."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    injected: bool = False
    answer: dict[str, Any] = field(default_factory=dict)


class FaultProxy:
    """Forwards every request upstream unchanged, except the failures it is told to inject."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.records: list[Record] = []
        #: Answer 503 ServiceUnavailable to this many of the next part PUTs.
        self.fail_puts = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def puts(self, injected: bool | None = None) -> list[Record]:
        """Part PUTs seen so far (optionally only injected or only forwarded ones)."""
        with self._lock:
            return [
                r
                for r in self.records
                if r.method == "PUT" and (injected is None or r.injected == injected)
            ]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        split = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        inject = False
        with self._lock:
            if h.command == "PUT" and self.fail_puts > 0:
                self.fail_puts -= 1
                inject = True
        if inject:
            payload = {
                "code": "ServiceUnavailable",
                "message": "injected by the test proxy",
                "request_id": "proxy",
            }
            self._reply(h, 503, json.dumps(payload).encode(), {"retry-after": "0"})
            self._record(h.command, split.path, params, 503, True, payload)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() in _FORWARD}
        r = self._http.request(h.command, self.upstream + h.path, content=body, headers=headers)
        back = {k: v for k, v in r.headers.items() if k.lower() in _BACK}
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        self._record(h.command, split.path, params, r.status_code, False, answer)
        self._reply(h, r.status_code, r.content, back)

    def _record(
        self, method: str, path: str, params: dict, status: int, injected: bool, answer: Any
    ) -> None:
        with self._lock:
            self.records.append(
                Record(
                    method,
                    path,
                    params,
                    status,
                    injected,
                    answer if isinstance(answer, dict) else {},
                )
            )

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
