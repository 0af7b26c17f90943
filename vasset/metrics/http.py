"""The API's side of metrics: request counts and timing by route template, and GET /metrics."""

from __future__ import annotations

import functools
import re

from litestar import Request, Response, get
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


class RequestMetrics:
    """Counts and times HTTP requests by the template of the route that answered them."""

    def __init__(self, m: Metrics) -> None:
        self.in_progress = m.http_in_progress
        self._requests = m.http_requests
        self._seconds = m.http_seconds
        # labels() builds and locks on every call; the children of a label set never change.
        self._children: dict[tuple, tuple] = {}

    def finished(self, template: str | None, method: str, status: int, seconds: float) -> None:
        """Record one answered request (template None: no route matched)."""
        children = self._children.get((template, method, status))
        if children is None:
            route = route_label(template) if template else UNMATCHED
            children = (
                self._requests.labels(route, method, str(status)),
                self._seconds.labels(route, method),
            )
            if len(self._children) < 4096:  # methods and statuses are few; be safe anyway
                self._children[(template, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request, ctx: Ctx) -> Response[bytes]:
    """Prometheus text of this instance (every server process of it), for Prometheus."""
    if not bearer_accepted(request.headers.get("authorization", ""), ctx.settings.metrics_token):
        raise errors.InvalidMetricsToken()
    state: SharedState = request.app.state.metrics_state
    body = await render(metrics(), state)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
