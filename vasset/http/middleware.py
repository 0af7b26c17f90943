"""ASGI middleware around the whole app: request ids, access log lines, CORS and metrics.

One wrapper instead of four: every layer costs a coroutine and a send wrapper per request.
CORS: browsers on other origins upload with tokens and play signed URLs; nothing relies on
cookies except /console, whose cookie is SameSite=Strict and never sent cross-site, so any
origin may call (``*``, no credentials).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from vasset.metrics.http import RequestMetrics

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


#: A route answered at the edge: (scope, request id) -> (status, extra headers, JSON body).
FastRoute = Callable[[HTTPScope, str], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]
JSON_TYPE = (b"content-type", b"application/json; charset=utf-8")


def edge_middleware(
    app: ASGIApp,
    recorder: RequestMetrics | None = None,
    own_cors: tuple[str, ...] = (),
    fast_routes: Mapping[str, FastRoute] | None = None,
) -> ASGIApp:
    """Request ids (structlog, X-Request-Id), CORS, the access log and request metrics.

    Paths under ``own_cors`` answer CORS themselves (their protocol has headers of its own).
    ``fast_routes`` (path -> handler, GET only) answer without entering Litestar: the hottest
    route skips routing, dependency injection and the response machinery.
    """
    # A concrete bound logger (not the lazy module proxy): below its level, .info is a no-op.
    log = structlog.get_logger("vasset.access").bind()
    fast = dict(fast_routes or {})

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        # Ids only need to be unique, not secret: Mersenne bits cost a tenth of os.urandom,
        # and the random module reseeds itself in every forked server process.
        request_id = f"{random.getrandbits(96):024x}"
        header = (b"x-request-id", request_id.encode())
        origin, preflight = _cross_origin(scope, own_cors)
        method = scope["method"]
        if preflight:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [*PREFLIGHT_HEADERS, header, NOSNIFF],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            if recorder is not None:
                recorder.finished(None, method, 204, time.perf_counter() - started)
            return
        extra = [header, NOSNIFF, *CORS_HEADERS] if origin else [header, NOSNIFF]
        scope.setdefault("state", {})["request_id"] = request_id
        # bind/reset with tokens: clear_contextvars() copies the whole context every request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500  # an app that raised before answering: the server answers 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        if recorder is not None:
            recorder.in_progress.inc()
        try:
            handler = fast.get(scope["path"]) if method == "GET" else None
            if handler is None:
                await app(scope, receive, send_with_id)
            else:
                # The route template Litestar would have written while routing (metrics label).
                scope["path_template"] = scope["path"]
                status, headers, body = await handler(scope, request_id)
                length = (b"content-length", str(len(body)).encode())
                start = [JSON_TYPE, length, *headers, *extra]
                await send({"type": "http.response.start", "status": status, "headers": start})
                await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            elapsed = time.perf_counter() - started
            if recorder is not None:
                recorder.in_progress.dec()
                recorder.finished(scope.get("path_template"), method, status, elapsed)
            log.info(
                "request",
                method=method,
                path=scope["path"],
                status=status,
                ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.reset_contextvars(**tokens)

    return middleware
