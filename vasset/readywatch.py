"""`vasset run`'s watch on /ready: says what is not ready yet, then that the service is up.

Standard library only: it runs in the light `vasset run` process beside the foreground server.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

#: Seconds between two /ready probes, and the most one probe may take.
POLL = 0.5
PROBE_TIMEOUT = 5.0


def probe_url(host: str, port: int) -> str:
    """The /ready URL of a server listening on host (a wildcard address is probed on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/ready"


def not_ready(body: bytes) -> str:
    """The failing checks of a 503 /ready answer, as one line."""
    try:
        checks = json.loads(body).get("checks", {})
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]
    return "; ".join(f"{name}: {what}" for name, what in checks.items() if what != "ok")


class ReadyWatcher:
    """A daemon thread polling /ready: prints each new reason it is not ready, then the up-line."""

    def __init__(self, host: str, port: int, public: str | None = None) -> None:
        self.url = probe_url(host, port)
        self.public = public or f"http://{host}:{port}"
        self.halt = threading.Event()
        self.up = threading.Event()
        # No proxy from the environment: the server is on this host.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self.thread.start()

    def stop(self) -> None:
        """Stop polling (the server stopped)."""
        self.halt.set()

    def _probe(self) -> tuple[int | None, bytes]:
        try:
            with self.opener.open(self.url, timeout=PROBE_TIMEOUT) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return None, b""  # not listening yet

    def _run(self) -> None:
        said = ""
        while not self.halt.is_set():
            status, body = self._probe()
            if status == 200:
                self.up.set()
                print(f"vasset is up: {self.public}", flush=True)
                return
            if status is not None:
                reason = not_ready(body) if status == 503 else f"/ready answered {status}"
                if reason != said:
                    print(f"vasset is not ready yet: {reason}", flush=True)
                    said = reason
            self.halt.wait(POLL)
