"""The spans vasset opens itself, and the trace context a job carries into the worker.

Every helper takes the process's ``Tracing`` (None when tracing is off) and then does nothing,
without importing OpenTelemetry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vasset.tracing.setup import Tracing
    from vasset.transcode.outcome import FfmpegResult
    from vasset.transcode.repository import Job

#: Characters of an FFmpeg command line kept on its span (the ladder's argv runs to kilobytes).
ARGV_SUMMARY_LIMIT = 512


def current_traceparent() -> str | None:
    """The W3C traceparent of the span running now, or None when no span is recording."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # nothing in this process ever started a span
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().is_recording():
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def job_span(tracing: Tracing | None, job: Job) -> Iterator[None]:
    """One transcode attempt, a child of the request that enqueued the job (when it was traced)."""
    if tracing is None:
        yield
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = None
    if job.trace_context:
        parent = TraceContextTextMapPropagator().extract({"traceparent": job.trace_context})
    attributes: dict[str, str | int] = {
        "vasset.job.id": job.id,
        "vasset.job.kind": job.kind,
        "vasset.job.attempt": job.attempts,
        "vasset.job.lease_token": job.lease_token,
        "vasset.video.id": job.video_id,
    }
    with tracing.tracer.start_as_current_span(
        f"transcode {job.kind}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield


def argv_summary(argv: Sequence[str]) -> str:
    """The command line, cut to ARGV_SUMMARY_LIMIT characters."""
    line = " ".join(argv)
    if len(line) <= ARGV_SUMMARY_LIMIT:
        return line
    return line[: ARGV_SUMMARY_LIMIT - 3] + "..."


@contextmanager
def ffmpeg_span(
    tracing: Tracing | None, step: str, argv: Sequence[str]
) -> Iterator[Callable[[FfmpegResult], None]]:
    """A span around one FFmpeg process; call what it yields with the process's result."""
    if tracing is None:
        yield lambda result: None
        return
    from opentelemetry.trace import Status, StatusCode

    attributes = {"vasset.ffmpeg.step": step, "process.command_line": argv_summary(argv)}
    with tracing.tracer.start_as_current_span(f"ffmpeg {step}", attributes=attributes) as span:

        def record(result: FfmpegResult) -> None:
            span.set_attributes(
                {
                    "vasset.ffmpeg.outcome": result.outcome.value,
                    "vasset.ffmpeg.elapsed_s": result.elapsed,
                    "vasset.ffmpeg.out_time_ms": result.out_time_ms,
                }
            )
            if result.returncode is not None:
                span.set_attribute("process.exit_code", result.returncode)
            if not result.ok:
                span.set_status(Status(StatusCode.ERROR, result.reason or result.outcome.value))

        yield record
