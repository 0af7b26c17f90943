"""Litestar dependencies: the process Context, the signed caller, and parsed queries.

Handlers declare what they need in their signature (``ctx: Context``, ``caller: App``,
``q: InitParams``). Queries are parsed from the raw query string by vasset/http/params.py,
not by Litestar, so that empty values, duplicates and escapes behave exactly as the signature
check sees them; ``query(Model, signed=True)`` parses only after the caller is authenticated,
so an unsigned call learns nothing about its parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from vasset.auth.verify import App
from vasset.context import Context
from vasset.errors import VassetError
from vasset.http.auth import ctx_of, query_string, raw_path
from vasset.http.params import parse_params

#: Handler parameter types. Not validated by Litestar: they are built here, not sent by clients.
Ctx = NamedDependency[SkipValidation[Context]]
Caller = NamedDependency[SkipValidation[App]]


def provide_ctx(request: Request) -> Context:
    """The Context built at startup (vasset/app.py's lifespan)."""
    return ctx_of(request)


async def provide_caller(request: Request, ctx: Ctx) -> App:
    """The app a signed call acts for (raises the 401 of docs/API.md otherwise)."""
    return await ctx.auth.verify_signed(request.method, raw_path(request), query_string(request))


def query(
    model: type,
    *,
    signed: bool = False,
    on_error: Callable[[Request, VassetError], Awaitable[None]] | None = None,
) -> Provide:
    """A dependency that parses the query into model (after authentication when signed).

    on_error runs before a refusal propagates (a part upload must settle its unread body).
    """
    if on_error is not None:
        hook = on_error

        async def parse_or_settle(request: Request) -> Any:
            try:
                return parse_params(query_string(request), model)
            except VassetError as exc:
                await hook(request, exc)
                raise

        return Provide(parse_or_settle)
    if signed:

        def parse_signed(request: Request, caller: Caller) -> Any:
            return parse_params(query_string(request), model)

        return Provide(parse_signed, sync_to_thread=False)

    def parse(request: Request) -> Any:
        return parse_params(query_string(request), model)

    return Provide(parse, sync_to_thread=False)


#: App-wide dependencies (routes add their own ``q``).
DEPENDENCIES = {
    "ctx": Provide(provide_ctx, sync_to_thread=False),
    "caller": Provide(provide_caller),
}
