"""ASGI middleware: a request id on every log line and in X-Request-Id."""

from __future__ import annotations

import secrets
import time

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Assign a request id, bind it to structlog, and send it back as X-Request-Id."""
    # A concrete bound logger (not the lazy module proxy): below its level, .info is a no-op.
    log = structlog.get_logger("vasset.access").bind()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = secrets.token_hex(12)
        header = (b"x-request-id", request_id.encode())
        scope.setdefault("state", {})["request_id"] = request_id
        # bind/reset with tokens: clear_contextvars() copies the whole context every request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.reset_contextvars(**tokens)

    return middleware
