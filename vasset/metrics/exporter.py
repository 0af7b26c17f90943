"""`vasset worker --metrics-port P`: the worker's metrics over HTTP, on the worker's own loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from vasset.metrics.collectors import SharedState, render
from vasset.metrics.registry import metrics
from vasset.metrics.tokens import bearer_accepted

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)


async def start_exporter(ctx: Context, host: str, port: int, node_limit: int) -> web.AppRunner:
    """Serve GET /metrics on host:port until the returned runner is cleaned up."""
    state = SharedState(ctx, node_limit)
    token = ctx.settings.metrics_token

    async def scrape(request: web.Request) -> web.Response:
        if not bearer_accepted(request.headers.get("Authorization", ""), token):
            return web.Response(
                status=401,
                text="GET /metrics needs Authorization: Bearer <VASSET_METRICS_TOKEN>\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await render(metrics(), state)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("metrics_listening", url=f"http://{host}:{port}/metrics")
    return runner
