"""Optional OpenTelemetry tracing, off unless VASSET_OTEL_ENDPOINT is set.

``setup.configure_tracing`` builds a process's tracer provider (OTLP/HTTP export, or an exporter
a test hands in) and the instrumentation of the HTTP app, MySQL, Redis and the BlobStore;
``spans`` holds the few spans vasset opens itself (a transcode job, each FFmpeg run) and the
traceparent a queued job carries from its request into the worker. Nothing here imports
OpenTelemetry until tracing is configured.
"""
