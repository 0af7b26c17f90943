"""What every console API route checks first: the session cookie, and JSON bodies."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Request

from vasset import errors
from vasset.auth.verify import App
from vasset.console import session
from vasset.http.deps import Ctx

T = TypeVar("T")


async def logged_in(request: Request, ctx: Ctx) -> bool:
    """Whether the request carries a valid session cookie."""
    return await ctx.console.logged_in(request.cookies.get(session.COOKIE))


async def authorized(request: Request, ctx: Ctx) -> App:
    """The console's app for a request with a valid session cookie (else 401 / 404)."""
    ctx.console.require_enabled()
    if not await logged_in(request, ctx):
        raise errors.InvalidConsoleKey()
    return await ctx.console.app()


def require_json(request: Request) -> None:
    """State-changing calls must be JSON: no cross-site form can send that without CORS."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise errors.InvalidParameter("send a JSON body (Content-Type: application/json)")


async def json_body(request: Request, model: type[T]) -> T:
    """The request's JSON body as model (InvalidParameter when it is not JSON or not valid)."""
    require_json(request)
    try:
        return msgspec.json.decode(await request.body(), type=model)
    except msgspec.ValidationError as exc:
        raise errors.InvalidParameter(f"invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise errors.InvalidParameter("the body is not valid JSON") from None
