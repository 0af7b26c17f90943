"""Read a request body straight from the ASGI receive channel, chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from litestar import Request


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
