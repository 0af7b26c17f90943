"""The Litestar application factory (nothing is built at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from vasset import errors
from vasset.context import Context, build_context, close_context
from vasset.http.middleware import request_id_middleware
from vasset.http.responses import (
    handle_http_exception,
    handle_unexpected,
    handle_vasset_error,
    json_response,
)
from vasset.logs import configure_logging
from vasset.settings import Settings, load_settings


@get("/health")
async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response({"ok": True})


def route_handlers() -> list:
    """Every route, gathered from the domain folders."""
    from vasset.console.api import ROUTES as console_routes
    from vasset.playback.api import ROUTES as playback_routes
    from vasset.transcode.api import ROUTES as transcode_routes
    from vasset.upload.api import ROUTES as upload_routes
    from vasset.upload.direct_api import ROUTES as direct_routes
    from vasset.videos.api import ROUTES as video_routes

    return [
        health,
        *upload_routes,
        *direct_routes,
        *video_routes,
        *transcode_routes,
        *playback_routes,
        *console_routes,
    ]


def create_app(settings: Settings | None = None, ctx: Context | None = None) -> Litestar:
    """Build the ASGI app; the Context is created on startup and closed on shutdown."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        own = ctx is None
        app.state.ctx = ctx or build_context(settings)
        for hook in app.state.ctx.extras.get("startup", []):
            await hook(app.state.ctx)
        try:
            yield
        finally:
            if own:
                await close_context(app.state.ctx)

    return Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        exception_handlers={
            errors.VassetError: handle_vasset_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        state=State({"settings": settings}),
        openapi_config=None,
        debug=False,
        request_max_body_size=1024 * 1024,
    )


def app_from_env():
    """Factory for ASGI servers: settings from the environment, request ids around everything."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    # Wrapped outside Litestar so that router-level errors (unknown path) get an id too.
    return request_id_middleware(create_app(settings))
