"""OpenTelemetry tracing (issue 12, item 2): request, MySQL, Redis, storage, job and FFmpeg spans.

The app runs in-process (Litestar's TestClient) against the module's own MariaDB database and
Redis prefix, and a real transcode runs in-process through the worker's claim and job code on a
small generated clip; spans go to the SDK's InMemorySpanExporter. The off switch is checked in a
fresh interpreter (nothing of the SDK imported, no traceparent stored), the OTLP/HTTP path
against a local receiver, and the missing-packages refusal with the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import msgspec
import pytest
from litestar.testing import TestClient
from opentelemetry.trace import SpanKind

from tests import media
from tests.conftest import MYSQL_BASE, REDIS_URL, create_app
from tests.support.api import Api
from tests.support.db import drop_database, sql
from tests.support.server import ROOT
from tests.support.workers import open_slot_epoch
from vasset.app import create_app as create_asgi_app
from vasset.context import build_context, close_context
from vasset.settings import load_settings
from vasset.tracing.setup import Tracing, configure_tracing
from vasset.transcode.worker import Worker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

#: The SDK parts vasset's tracing would import; none of them may load while tracing is off.
SDK_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.instrumentation.sqlalchemy",
    "opentelemetry.instrumentation.redis",
    "vasset.tracing.store",
    "vasset.tracing.http",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """VASSET_* of a private deployment: its own database, Redis prefix, storage and temp dir."""
    tag = os.environ.get("PYTEST_XDIST_WORKER", "gw") + secrets.token_hex(3)
    root = tmp_path_factory.mktemp("tracing")
    env = {
        "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_trace_{tag}",
        "VASSET_REDIS_URL": REDIS_URL,
        "VASSET_REDIS_PREFIX": f"vtrace:{tag}:",
        "VASSET_STORAGE_URL": f"file://{root / 'storage'}",
        "VASSET_TEMP_DIR": str(root / "tmp"),
        "VASSET_LOG_LEVEL": "warning",
        "VASSET_LADDER": "240p",
        "VASSET_IMAGE_COUNT": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "vasset", "db", "upgrade"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    open_slot_epoch(REDIS_URL, env["VASSET_REDIS_PREFIX"])
    yield env
    drop_database(env["VASSET_DATABASE_URL"])


@pytest.fixture(scope="module")
def creds(env) -> dict:
    return create_app(env, "tracing")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return media.landscape(media.shared_dir(tmp_path_factory))


def upload(client: TestClient, creds: dict, clip: Path, auto: int) -> dict:
    """A whole native upload through the in-process app; returns the completion answer."""
    api = Api(str(client.base_url), creds["app_key"], creds["app_secret"], check_contract=False)
    api.http = client
    data = clip.read_bytes()
    done = api.upload(clip.name + secrets.token_hex(2), data, max(len(data), 100 * 1024), auto=auto)
    assert done["status"] in ("uploaded", "transcode_queued"), done
    return done


async def run_one_job(env: dict[str, str], tracing: Tracing | None) -> None:
    """Claim one job with the worker's code and run it to its end (as `vasset worker` would)."""
    settings = load_settings(env)
    os.makedirs(settings.temp_dir, exist_ok=True)
    ctx = build_context(settings, tracing)
    worker = Worker(ctx)
    try:
        for _ in range(200):
            if await worker._try_start():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no job to claim")
        await asyncio.gather(*worker.running.values())
    finally:
        await close_context(ctx)


def job_of(env: dict[str, str], vid: int) -> tuple[str, str | None]:
    """(state, trace_context) of the video's latest job."""
    rows = sql(
        env,
        "SELECT state, trace_context FROM transcode_job WHERE video_id = :v ORDER BY id DESC",
        v=vid,
    )
    assert rows, f"no job for video {vid}"
    return rows[0][0], rows[0][1]


def trace_and_span(span: ReadableSpan) -> list[str]:
    """The trace id and span id as a W3C traceparent spells them."""
    ctx = span.get_span_context()
    return [f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def within(span: ReadableSpan, ancestor: ReadableSpan, by_id: dict[int, ReadableSpan]) -> bool:
    """Whether ancestor is span's parent, or its parent's, and so on."""
    found: ReadableSpan | None = span
    while found is not None and found.parent is not None:
        if found.parent.span_id == ancestor.get_span_context().span_id:
            return True
        found = by_id.get(found.parent.span_id)
    return False


def of_system(spans: list[ReadableSpan], system: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("db.system") == system]


def test_request_and_job_spans_form_one_trace(env, creds, clip):
    # Imported here: the tracing-off test runs this module's helpers where the SDK must not load.
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing = configure_tracing(load_settings(env), exporter)
    assert tracing is not None
    with TestClient(create_asgi_app(load_settings(env), tracing=tracing)) as client:
        done = upload(client, creds, clip, auto=1)
        assert client.get("/health").status_code == 200
        assert client.get(f"/no/such/{secrets.token_hex(4)}").status_code == 404
    request_spans = list(exporter.get_finished_spans())
    servers = [s for s in request_spans if s.kind == SpanKind.SERVER]
    # Named by route template: the same names whatever the ids in the request.
    assert {s.name for s in servers} == {
        "POST /video/upload/init",
        "PUT /video/upload/upload",
        "GET /health",
        "GET",  # no route matched: the method alone, never the raw path
    }, [s.name for s in servers]
    routed = [s for s in servers if s.name != "GET"]
    assert all(s.attributes and s.attributes["http.route"] == s.name.split()[1] for s in routed)
    by_id = {s.get_span_context().span_id: s for s in request_spans}
    part = next(s for s in servers if s.name == "PUT /video/upload/upload")
    in_part = [s for s in request_spans if within(s, part, by_id)]
    mysql, redis = of_system(in_part, "mysql"), of_system(in_part, "redis")
    assert mysql and redis, sorted({s.name for s in in_part})
    part_id = part.get_span_context().span_id
    assert any(parent_id(s) == part_id for s in mysql)
    assert any(parent_id(s) == part_id for s in redis)
    assert all(s.context.trace_id == part.context.trace_id for s in in_part)
    storage = {s.name for s in in_part if s.name.startswith("storage ")}
    assert {"storage open_part", "storage commit_part"} <= storage, storage
    commit = next(s for s in in_part if s.name == "storage commit_part")
    assert commit.attributes and commit.attributes["vasset.storage.size"] == clip.stat().st_size
    # Every MySQL and Redis span of the upload belongs to one of its requests.
    for span in of_system(request_spans, "mysql") + of_system(request_spans, "redis"):
        assert any(within(span, server, by_id) for server in servers), span.name

    # The job keeps the traceparent of the request that completed the upload and queued it.
    vid = done["vid"]
    state, stored = job_of(env, vid)
    assert state == "queued"
    assert stored is not None and stored.split("-")[1:3] == trace_and_span(part)

    exporter.clear()
    asyncio.run(run_one_job(env, tracing))
    assert job_of(env, vid)[0] == "succeeded"
    worker_spans = list(exporter.get_finished_spans())
    by_id = {s.get_span_context().span_id: s for s in worker_spans}
    job = next(s for s in worker_spans if s.name == "transcode transcode")
    assert job.context.trace_id == part.context.trace_id
    assert parent_id(job) == part_id
    assert job.attributes and job.attributes["vasset.video.id"] == vid
    in_job = [s for s in worker_spans if within(s, job, by_id)]
    ffmpeg = {s.name: s for s in in_job if s.name.startswith("ffmpeg ")}
    # One FFmpeg per job: the snapshots come from the ladder's own decode.
    assert set(ffmpeg) == {"ffmpeg transcode"}, set(ffmpeg)
    for span in ffmpeg.values():
        assert parent_id(span) == job.get_span_context().span_id
        assert span.attributes and span.attributes["process.exit_code"] == 0
        assert span.attributes["vasset.ffmpeg.outcome"] == "ok"
        assert str(span.attributes["process.command_line"]).startswith("ffmpeg")
    puts = [s for s in in_job if s.name == "storage put_file"]
    assert any(str((s.attributes or {})["vasset.storage.key"]).endswith(".mp4") for s in puts)
    # A put the progressive publisher's cancelled last round cut short ends without a size.
    sizes = [(s.attributes or {}).get("vasset.storage.size") for s in puts]
    assert any(sizes) and all(size > 0 for size in sizes if size is not None)
    assert of_system(in_job, "mysql"), sorted({s.name for s in in_job})


OFF_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from litestar.testing import TestClient
    from tests.test_tracing import run_one_job, upload, job_of
    from pathlib import Path
    from vasset.app import create_app
    from vasset.settings import load_settings

    env, creds, clip = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
    with TestClient(create_app(load_settings(env))) as client:
        done = upload(client, creds, clip, auto=1)
    queued = job_of(env, done["vid"])
    asyncio.run(run_one_job(env, None))
    print(json.dumps({
        "queued": queued,
        "finished": job_of(env, done["vid"]),
        "loaded": [m for m in json.loads(sys.argv[4]) if m in sys.modules],
    }))
    """
)


def test_tracing_off_imports_no_sdk_and_stores_no_traceparent(env, creds, clip):
    # A fresh interpreter: this one imported the SDK for the other tests.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            OFF_SCRIPT,
            json.dumps(env),
            json.dumps(creds),
            str(clip),
            json.dumps(SDK_MODULES),
        ],
        env={**os.environ, **env, "VASSET_OTEL_ENDPOINT": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["queued"] == ["queued", None]
    assert answer["finished"] == ["succeeded", None]
    assert answer["loaded"] == []


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector stand-in: records each POST (path, content type, body)."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_endpoint_exports_batched_spans_over_otlp_http(env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = msgspec.structs.replace(
            load_settings(env),
            otel_endpoint=f"http://127.0.0.1:{server.server_port}",
            otel_service_name="vasset-trace-check",
        )
        tracing = configure_tracing(settings)
        assert tracing is not None
        with tracing.tracer.start_as_current_span("exported-span-check"):
            pass
        assert Receiver.received == []  # batched: nothing sent until the batch is flushed
        tracing.shutdown()
    finally:
        server.shutdown()
    assert len(Receiver.received) == 1
    path, content_type, body = Receiver.received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"exported-span-check" in body and b"vasset-trace-check" in body


def test_endpoint_without_the_packages_is_refused_in_one_line(env, tmp_path):
    # A regular `opentelemetry` package earlier on the path hides the installed namespace one.
    shadow = tmp_path / "opentelemetry"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    out = subprocess.run(
        [sys.executable, "-m", "vasset", "worker"],
        env={
            **os.environ,
            **env,
            "VASSET_OTEL_ENDPOINT": "http://127.0.0.1:4318",
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "VASSET_OTEL_ENDPOINT" in lines[0] and "pip install 'vasset[otel]'" in lines[0]
