"""What the signature covers (the raw path and query), and the Context of a request."""

from __future__ import annotations

from typing import cast

from litestar import Request

from vasset.context import Context


def ctx_of(request: Request) -> Context:
    """The process Context built at startup (handlers take it as the ``ctx`` dependency)."""
    return cast(Context, request.app.state.ctx)


def query_string(request: Request) -> str:
    """The raw query string as sent."""
    return request.scope.get("query_string", b"").decode("latin-1")


def raw_path(request: Request) -> str:
    """The path exactly as sent, without the query (what the signature covers)."""
    raw = request.scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return request.scope["path"]
