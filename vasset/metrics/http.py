"""The API's side of metrics: request timing by route template, and GET /metrics."""

from __future__ import annotations

import functools
import re
import time

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST

from vasset import errors
from vasset.http.deps import Ctx
from vasset.metrics.collectors import SharedState, render
from vasset.metrics.registry import Metrics, metrics
from vasset.metrics.tokens import bearer_accepted

#: The route label of a request no route matched (a raw path would make unbounded labels).
UNMATCHED = "unmatched"
_TYPED_PARAM = re.compile(r"\{(\w+):[^}]*\}")


@functools.lru_cache(maxsize=512)
def route_label(template: str) -> str:
    """A path template without parameter types: /files/{upload_id:str} -> /files/{upload_id}."""
    return _TYPED_PARAM.sub(r"{\1}", template)


def metrics_middleware(app: ASGIApp, m: Metrics) -> ASGIApp:
    """Count and time every HTTP request by the template of the route that answered it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raised before answering: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m.http_in_progress.inc()
        try:
            await app(scope, receive, send_status)
        finally:
            m.http_in_progress.dec()
            # Litestar writes the matched template into the scope while routing.
            template = scope.get("path_template")
            route = route_label(template) if template else UNMATCHED
            method = scope["method"]
            m.http_requests.labels(route, method, str(status)).inc()
            m.http_seconds.labels(route, method).observe(time.perf_counter() - started)

    return middleware


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request, ctx: Ctx) -> Response[bytes]:
    """Prometheus text of this instance (every server process of it), for Prometheus."""
    if not bearer_accepted(request.headers.get("authorization", ""), ctx.settings.metrics_token):
        raise errors.InvalidMetricsToken()
    state: SharedState = request.app.state.metrics_state
    body = await render(metrics(), state)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
