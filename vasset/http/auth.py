"""Authenticating a Litestar request (signed call or upload token)."""

from __future__ import annotations

from litestar import Request

from vasset.auth.verify import App
from vasset.context import Context


def ctx_of(request: Request) -> Context:
    """The process Context stored on the app."""
    return request.app.state.ctx


def query_string(request: Request) -> str:
    """The raw query string as sent."""
    return request.scope.get("query_string", b"").decode("latin-1")


async def signed_app(request: Request) -> App:
    """The app a signed call acts for (raises the 401 of API.md otherwise)."""
    ctx = ctx_of(request)
    return await ctx.auth.verify_signed(request.method, raw_path(request), query_string(request))


def raw_path(request: Request) -> str:
    """The path exactly as sent, without the query (what the signature covers)."""
    raw = request.scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return request.scope["path"]
