"""Request spans: Litestar's OpenTelemetry plugin, with spans named by route template.

The plugin opens the server span before routing, when only the raw path is known; a middleware
that runs after routing renames it `METHOD /route/{template}`, so span names never carry ids.
A request that matches no route keeps the bare method as its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.plugins import InitPlugin
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, Receive, Scope, Send
    from opentelemetry.sdk.trace import TracerProvider


def plugins(provider: TracerProvider) -> list[Any]:
    """The plugins to hand to Litestar."""
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=_unrouted_name,
        # One span per ASGI message would be one per chunk of an uploaded part.
        exclude_spans=["receive", "send"],
    )
    return [OpenTelemetryPlugin(config), RouteSpanNames()]


def _unrouted_name(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's name before routing: the method only (the raw path may hold ids)."""
    return str(scope.get("method") or scope.get("type", "request")), {}


class RouteSpanNames(InitPlugin):
    """Adds the middleware that names each request's span by its route template."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.append(name_span_by_route)
        return app_config


def name_span_by_route(app: ASGIApp) -> ASGIApp:
    """Middleware (runs after routing): rename the current server span to its route template."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        template = scope.get("path_template")
        span = trace.get_current_span()
        if template and span.is_recording():
            method = scope.get("method") or scope["type"]
            span.update_name(f"{method} {template}")
            span.set_attribute(HTTP_ROUTE, template)
        await app(scope, receive, send)

    return middleware
