"""The Litestar application factory (nothing is built at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from vasset import errors
from vasset.context import Context, build_context, close_context
from vasset.http.deps import DEPENDENCIES
from vasset.http.middleware import edge_middleware
from vasset.http.openapi import openapi_config, swagger_asset
from vasset.http.responses import (
    handle_http_exception,
    handle_unexpected,
    handle_vasset_error,
)
from vasset.logs import configure_logging
from vasset.metrics.collectors import SharedState
from vasset.metrics.http import RequestMetrics
from vasset.metrics.registry import metrics, metrics_process_ended
from vasset.playback import fast as playurl_fast
from vasset.settings import Settings, load_settings
from vasset.tracing.setup import Tracing, configure_tracing


def _version() -> str:
    try:
        return version("vasset")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0"


def route_handlers(settings: Settings) -> list[Any]:
    """Every route, gathered from the domain folders."""
    from vasset.assets.api import ROUTES as asset_routes
    from vasset.captions.api import ROUTES as caption_routes
    from vasset.clips.api import ROUTES as clip_routes
    from vasset.console.api import ROUTES as console_routes
    from vasset.events.api import ROUTES as webhook_routes
    from vasset.events.stream_api import ROUTES as event_stream_routes
    from vasset.health import ROUTES as health_routes
    from vasset.metrics.http import metrics_route
    from vasset.playback.api import ROUTES as playback_routes
    from vasset.playback.storyboard import ROUTES as storyboard_routes
    from vasset.templates.api import ROUTES as template_routes
    from vasset.transcode.api import ROUTES as transcode_routes
    from vasset.upload.api import ROUTES as upload_routes
    from vasset.upload.direct_api import ROUTES as direct_routes
    from vasset.upload.resumable.api import routes as resumable_routes
    from vasset.videos.api import ROUTES as video_routes

    return [
        *health_routes,
        metrics_route,
        swagger_asset,
        *upload_routes,
        *direct_routes,
        *resumable_routes(settings),
        *video_routes,
        *transcode_routes,
        *template_routes,
        *clip_routes,
        *playback_routes,
        *storyboard_routes,
        *caption_routes,
        *asset_routes,
        *webhook_routes,
        *event_stream_routes,
        # The console's cookie-session routes serve its page only: not part of the API schema.
        Router("/", route_handlers=console_routes, include_in_schema=False),
    ]


def create_app(
    settings: Settings | None = None, ctx: Context | None = None, tracing: Tracing | None = None
) -> Litestar:
    """Build the ASGI app; the Context is created on startup and closed on shutdown."""
    settings = settings or load_settings()
    if tracing is None:
        # Request spans and the Context's MySQL, Redis and storage spans share one provider.
        tracing = ctx.tracing if ctx is not None else configure_tracing(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        own = ctx is None
        app.state.ctx = ctx or build_context(settings, tracing)
        app.state.metrics_state = SharedState(app.state.ctx)
        try:
            yield
        finally:
            if own:
                await close_context(app.state.ctx)
            metrics_process_ended()

    return Litestar(
        route_handlers=route_handlers(settings),
        lifespan=[lifespan],
        dependencies=DEPENDENCIES,
        exception_handlers={
            errors.VassetError: handle_vasset_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        state=State({"settings": settings}),
        openapi_config=openapi_config(_version()),
        debug=False,
        request_max_body_size=1024 * 1024,
        plugins=tracing.app_plugins() if tracing is not None else [],
    )


def asgi_app(settings: Settings) -> Any:
    """The served application: logging configured, request ids around everything."""
    configure_logging(settings.log_level, settings.log_json)
    # Wrapped outside Litestar so that router-level errors (unknown path) get an id too.
    # The tus / IETF routes answer CORS with their protocol's headers (tusd's defaults).
    app = create_app(settings)
    # With tracing on, playurl goes through Litestar too: its plugin makes the request spans.
    fast = (
        {} if settings.otel_endpoint else {playurl_fast.PATH: playurl_fast.playurl_route(app.state)}
    )
    return edge_middleware(
        app,
        RequestMetrics(metrics()),
        own_cors=(settings.tus_path.rstrip("/"),),
        fast_routes=fast,
    )


def app_from_env() -> Any:
    """Factory for ASGI servers: settings from the environment."""
    return asgi_app(load_settings())
