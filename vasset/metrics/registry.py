"""Every metric vasset records, created once per process by ``metrics()``.

In a `vasset serve --workers N` worker (PROMETHEUS_MULTIPROC_DIR set by the supervisor) the
values live in per-process files that /metrics sums; elsewhere they live in this process's
own registry. Scrape-time figures (queue depth, slots, disk) are in collectors.py.
"""

from __future__ import annotations

import functools
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client import values as prometheus_values

from vasset.metrics.multiproc import ENV

#: Seconds of one HTTP request: from a cached answer to a large part upload.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Seconds of one transcode attempt: from a short clip to a long film.
JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


class Metrics:
    """The process's metric objects; seams record with one call, e.g. ``uploads_created.inc()``."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # Multiprocess values are written to files and collected from there, not a registry.
        self.registry: CollectorRegistry | None = None
        if multiprocess_dir is None:
            self.registry = CollectorRegistry()
            ProcessCollector(registry=self.registry)
        reg = self.registry
        self.http_requests = Counter(
            "vasset_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_seconds = Histogram(
            "vasset_http_request_seconds",
            "Seconds from request start to the end of the answer, by route template and method",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=reg,
        )
        self.http_in_progress = Gauge(
            "vasset_http_requests_in_progress",
            "HTTP requests being served now",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.upload_bytes_received = Counter(
            "vasset_upload_bytes_received",
            "Upload body bytes the API received from clients (parts, tus PATCH bodies)",
            registry=reg,
        )
        self.uploads_created = Counter(
            "vasset_uploads_created", "Uploads started (init, tus/IETF creation)", registry=reg
        )
        self.uploads_completed = Counter(
            "vasset_uploads_completed",
            "Uploads verified and published as videos",
            registry=reg,
        )
        self.uploads_failed = Counter(
            "vasset_uploads_failed",
            "Uploads that ended without a video, by reason (an error code, or expired)",
            ["reason"],
            registry=reg,
        )
        self.direct_uploads_completed = Counter(
            "vasset_direct_uploads_completed",
            "Direct-to-OSS uploads completed",
            registry=reg,
        )
        self.direct_registered = Counter(
            "vasset_direct_registered", "PostObject uploads registered as videos", registry=reg
        )
        self.direct_verify_bytes_read = Counter(
            "vasset_direct_verify_bytes_read",
            "Bytes read back from OSS to verify direct uploads",
            registry=reg,
        )
        self.transcode_job_seconds = Histogram(
            "vasset_transcode_job_seconds",
            "Seconds of one transcode attempt, by outcome",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=reg,
        )
        self.webhook_deliveries = Counter(
            "vasset_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            ["outcome"],
            registry=reg,
        )
        self.janitor_removed = Counter(
            "vasset_janitor_removed",
            "What janitor passes removed or expired, by kind",
            ["kind"],
            registry=reg,
        )

    def janitor_pass(self, report: dict) -> None:
        """Count one janitor pass's report (kind -> how many)."""
        for kind, count in report.items():
            if isinstance(count, int) and count > 0:
                self.janitor_removed.labels(kind).inc(count)


@functools.cache
def metrics() -> Metrics:
    """This process's metrics, created on first use (the app and the worker call it at start)."""
    folder = os.environ.get(ENV) or None
    if folder is not None and not getattr(prometheus_values.ValueClass, "_multiprocess", False):
        # prometheus_client picks file-backed values when it is first imported; an import that
        # came before the variable was set must not leave this process on in-memory values.
        prometheus_values.ValueClass = prometheus_values.get_value_class()
    return Metrics(folder)


def metrics_process_ended() -> None:
    """Drop this process's live gauges from a multiprocess folder (it is shutting down)."""
    folder = os.environ.get(ENV)
    if folder:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(os.getpid(), folder)
