"""Read a request body straight from the ASGI receive channel, chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from litestar import Request

from vasset.errors import VassetError


class ClientGone(Exception):
    """The client disconnected before the body ended."""


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """Yield body chunks; raise ClientGone if the connection drops before the end."""
    receive = request.receive
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "http.request":
            body = cast(bytes, event.get("body", b""))
            if body:
                yield body
            if not event.get("more_body", False):
                request.scope.setdefault("state", {})["body_done"] = True
                return
        elif kind == "http.disconnect":
            raise ClientGone()


async def settle_body(request: Request, exc: VassetError) -> None:
    """Before a refusal: the body may be unread, so drain a little or close the connection."""
    # Drained, keep-alive works; left unread, the next request on the connection would fail.
    body_done = request.scope.get("state", {}).get("body_done") is True
    if not body_done and not await drain(request, limit=1 << 20):
        exc.extra_headers["Connection"] = "close"


async def drain(request: Request, limit: int) -> bool:
    """Read and drop up to limit body bytes; True if the body ended within the limit."""
    length = request.headers.get("content-length")
    # A length of thousands of digits is simply too long (int() would refuse it: a 500).
    if length is not None and (
        len(length) > 18 or (length.isdecimal() and length.isascii() and int(length) > limit)
    ):
        return False
    seen = 0
    try:
        async for chunk in body_chunks(request):
            seen += len(chunk)
            if seen > limit:
                return False
    except (ClientGone, RuntimeError):
        return False
    return True
