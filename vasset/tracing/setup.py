"""A process's tracer provider and the instrumentation vasset applies with it.

The provider is vasset's own, passed to every instrumentation explicitly, never installed as
OpenTelemetry's global one: an app and a worker built in one process (tests) keep their spans
apart, and nothing else in the process starts exporting by accident.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from vasset.settings import Settings, SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine

    from vasset.storage.base import BlobStore

#: Modules tracing needs; `pip install vasset[otel]` brings them.
REQUIRED = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.instrumentation.sqlalchemy",
    "opentelemetry.instrumentation.redis",
    "litestar.plugins.opentelemetry",
)
MISSING = (
    "VASSET_OTEL_ENDPOINT is set but OpenTelemetry is not installed ({module} is missing):"
    " pip install 'vasset[otel]', or unset VASSET_OTEL_ENDPOINT"
)


def check_installed(settings: Settings) -> None:
    """SettingsError in one line when tracing is asked for and its packages are missing."""
    if not settings.otel_endpoint:
        return
    for module in REQUIRED:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise SettingsError(MISSING.format(module=module))


class Tracing:
    """The tracer provider of one process, and what vasset instruments with it."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("vasset")

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per SQL statement on this engine (its pool's sync engine underneath)."""
        from opentelemetry.instrumentation.sqlalchemy import __version__ as version
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        # The instrumentor would also patch create_engine for the whole process: only this one.
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", version)
        usage = NoOpMeterProvider().get_meter("vasset").create_up_down_counter("unused")
        EngineTracer(tracer, engine.sync_engine, usage)

    def instrument_redis(self, client: Any) -> None:
        """A span per Redis command or pipeline of this client."""
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def wrap_store(self, store: BlobStore) -> BlobStore:
        """The store with a span around every call."""
        from vasset.tracing.store import TracingBlobStore

        return TracingBlobStore(store, self.tracer)

    def app_plugins(self) -> list[Any]:
        """Litestar plugins: a server span per request, named by its route template."""
        from vasset.tracing.http import plugins

        return plugins(self.provider)

    def flush(self, timeout_ms: int = 5000) -> None:
        """Export every finished span now (blocking: call it from a thread)."""
        self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        self.provider.shutdown()


def configure_tracing(settings: Settings, exporter: SpanExporter | None = None) -> Tracing | None:
    """Tracing for this process, or None when it is off.

    On when settings.otel_endpoint is set (spans batched to its OTLP/HTTP endpoint) or when an
    exporter is handed in (tests: every span exported as it ends).
    """
    if exporter is None and not settings.otel_endpoint:
        return None
    check_installed(settings)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
    if exporter is not None:
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return Tracing(provider)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(settings)))
    )
    return Tracing(provider)


def _traces_url(settings: Settings) -> str:
    """The OTLP/HTTP traces URL: the endpoint as given if it names a path, else + /v1/traces."""
    endpoint = settings.otel_endpoint.rstrip("/")
    if endpoint.endswith("/v1/traces"):
        return endpoint
    return endpoint + "/v1/traces"
