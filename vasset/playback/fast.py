"""GET /video/playurl answered at the ASGI edge (vasset/http/middleware.py's fast routes).

Players call playurl far more than anything else. This answers it with the very checks and
answer of the Litestar route in api.py (signature, nonce, app state, parameters, the same
service call and answer Struct), without Litestar's routing, dependency injection and response
machinery. The Litestar route stays: it documents the endpoint and serves it when tracing is on
(request spans come from Litestar's OpenTelemetry plugin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from vasset import errors
from vasset.http.params import convert_params
from vasset.http.responses import error_body
from vasset.http.schemas import shaped
from vasset.playback.schemas import Playback, PlayParams

if TYPE_CHECKING:
    from litestar.types import HTTPScope

    from vasset.context import Context
    from vasset.http.middleware import FastRoute

PATH = "/video/playurl"

log = structlog.get_logger(__name__)
_encode = msgspec.json.Encoder().encode


def signed_path(scope: HTTPScope) -> str:
    """The path exactly as sent, without the query (what the signature covers)."""
    raw = scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return scope["path"]


def playurl_route(state: Any) -> FastRoute:
    """The fast GET /video/playurl of an app whose lifespan puts the Context in state.ctx."""

    async def playurl(scope: HTTPScope, request_id: str) -> tuple[int, list, bytes]:
        ctx: Context = state.ctx
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            caller, raw = await ctx.auth.verify_signed_query(
                scope["method"], signed_path(scope), query
            )
            q = convert_params(raw, PlayParams)
            answer = await ctx.playback.playurl(caller.id, q.vid, q.definition, q.format, q.expires)
            return 200, [], _encode(shaped(answer, Playback))
        except errors.VassetError as exc:
            failure = exc
        except Exception as exc:
            log.exception("request_crashed", path=scope["path"], error=type(exc).__name__)
            failure = errors.VassetError("internal error; the request id identifies it")
        headers = [(k.lower().encode(), v.encode()) for k, v in failure.headers().items()]
        return failure.status, headers, error_body(failure, request_id, scope["path"])

    return playurl
