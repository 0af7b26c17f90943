"""Webhook receivers for tests: real HTTP servers on 127.0.0.1 that verify every delivery.

A Receiver checks each request with the `standardwebhooks` library against the secrets it is
given, records what arrived (and which secrets verified it), and answers what its script says:
a list of statuses (the last one repeats) or a callable. hold() makes it keep requests open
until release(), to kill a worker mid-delivery.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def new_secret() -> str:
    """A secret in the whsec_ + Base64 form vasset hands out."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Delivery:
    """One request as received."""

    id: str
    timestamp: str
    signature: str
    body: bytes
    headers: dict[str, str]
    verified_by: list[int]
    answered: int
    at: float = field(default_factory=time.time)

    @property
    def event(self) -> dict[str, Any]:
        """The body as JSON."""
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP/1.1 server; .url is where to register it."""

    def __init__(self, secrets: list[str] | None = None, answers: Any = (200,)) -> None:
        self.secrets = list(secrets or [])
        self.answers: list[int] | Callable[[int], int] = (
            answers if callable(answers) else list(answers)
        )
        self.deliveries: list[Delivery] = []
        self.unverified: list[Delivery] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._release = threading.Event()
        self._release.set()
        self.held = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One send per answer, sent at once: no Nagle and delayed-ACK stalls between
            # the headers and the body on a kept-alive connection.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver._receive(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                if 300 <= status < 400:
                    # A real redirect (to this receiver): following it would arrive here again.
                    self.send_header("location", "/redirected")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The target URL to register."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        """Serve in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (requests held are let go)."""
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self) -> None:
        """Keep every request from now on open until release()."""
        self._release.clear()

    def release(self) -> None:
        """Answer the requests held."""
        self._release.set()

    def _answer(self, n: int) -> int:
        if callable(self.answers):
            return self.answers(n)
        return self.answers[min(n, len(self.answers) - 1)]

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        verified = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, lower)
                verified.append(i)
            except WebhookVerificationError:
                pass
        with self.lock:
            n = len(self.deliveries) + len(self.unverified)
            status = self._answer(n)
        if not self._release.is_set():
            with self.lock:
                self.held += 1
                self.arrived.notify_all()
            self._release.wait()
        record = Delivery(
            id=lower.get("webhook-id", ""),
            timestamp=lower.get("webhook-timestamp", ""),
            signature=lower.get("webhook-signature", ""),
            body=body,
            headers=lower,
            verified_by=verified,
            answered=status,
        )
        with self.lock:
            (self.deliveries if verified or not self.secrets else self.unverified).append(record)
            self.arrived.notify_all()
        return status

    def wait(self, count: int, timeout: float = 30) -> list[Delivery]:
        """The first count deliveries, waiting for them up to timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.deliveries)} of {count} deliveries arrived in {timeout}s"
                        f" ({len(self.unverified)} failed verification)"
                    )
                self.arrived.wait(left)
            return list(self.deliveries[:count])

    def wait_held(self, timeout: float = 30) -> None:
        """Wait until a request is being held."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.held == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no request arrived to hold")
                self.arrived.wait(left)

    def of_types(self) -> list[str]:
        """The event types received, in arrival order."""
        with self.lock:
            return [d.event["type"] for d in self.deliveries]
