"""ASGI middleware around the whole app: request ids, access log lines and CORS.

One wrapper instead of three: every layer costs a coroutine and a send wrapper per request.
CORS: browsers on other origins upload with tokens and play signed URLs; nothing relies on
cookies except /console, whose cookie is SameSite=Strict and never sent cross-site, so any
origin may call (``*``, no credentials).
"""

from __future__ import annotations

import secrets
import time

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (
        b"access-control-expose-headers",
        b"X-Request-Id, Content-Range, ETag, Retry-After, Content-Length",
    ),
]
PREFLIGHT_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, PUT, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Content-Range, Range, If-None-Match"),
    (b"access-control-max-age", b"3600"),
    (b"content-length", b"0"),
]


# On every answer: a browser must never sniff a stored object or an error body into a script.
NOSNIFF = (b"x-content-type-options", b"nosniff")


def _cross_origin(scope: HTTPScope, own_cors: tuple[str, ...]) -> tuple[bool, bool]:
    """(request has an Origin header, it is a CORS preflight)."""
    origin = preflight = False
    if scope["path"] == "/metrics":
        return origin, preflight  # operator route: never readable by browsers on other sites
    if scope["path"].startswith(own_cors):
        return origin, preflight  # routes that answer CORS themselves (the tus endpoint)
    for name, _ in scope["headers"]:
        if name == b"origin":
            origin = True
        elif name == b"access-control-request-method":
            preflight = True
    return origin, origin and preflight and scope["method"] == "OPTIONS"


def request_id_middleware(app: ASGIApp, own_cors: tuple[str, ...] = ()) -> ASGIApp:
    """Assign a request id, bind it to structlog, send it back as X-Request-Id, answer CORS.

    Paths under ``own_cors`` answer CORS themselves (their protocol has headers of its own).
    """
    # A concrete bound logger (not the lazy module proxy): below its level, .info is a no-op.
    log = structlog.get_logger("vasset.access").bind()

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = secrets.token_hex(12)
        header = (b"x-request-id", request_id.encode())
        origin, preflight = _cross_origin(scope, own_cors)
        if preflight:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [*PREFLIGHT_HEADERS, header, NOSNIFF],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        extra = [header, NOSNIFF, *CORS_HEADERS] if origin else [header, NOSNIFF]
        scope.setdefault("state", {})["request_id"] = request_id
        # bind/reset with tokens: clear_contextvars() copies the whole context every request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
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
