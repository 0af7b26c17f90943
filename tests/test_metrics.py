"""Prometheus metrics of a real `vasset serve --workers 2` and `vasset worker --metrics-port`.

Uploads (parts and tus), a transcode, a failed upload and a janitor pass go through real
processes; both endpoints are scraped and parsed with prometheus_client's parser, and the
counters must move by exactly what was done, whichever of the two API processes served a call.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests import media
from tests.support.db import sql
from tests.support.orphans import die_with_parent
from tests.support.server import ROOT, ServerProcess, free_port
from tests.support.tus import Tus, get_ticket
from tests.support.workers import Stack, WorkerProcess, medium_clip, settle, wait_until

TOKEN = "scrape-" + secrets.token_hex(8)
PSIZE = 100 * 1024
Samples = dict[tuple[str, frozenset], float]


def start_serve(env: dict[str, str], workers: int, log: Path) -> ServerProcess:
    """`vasset serve --workers N` in its own session; returns once /health answers."""
    server = ServerProcess(env, log_path=log)
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    server.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vasset",
            "serve",
            "--port",
            str(server.port),
            "--workers",
            str(workers),
        ],
        env=server.env,
        cwd=ROOT,
        stdout=out,
        stderr=out,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    out.close()
    wait_until(lambda: _answers(server.url + "/health"), 120, "vasset serve to answer")
    return server


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_worker(env: dict[str, str], port: int, log: Path) -> WorkerProcess:
    """`vasset worker --metrics-port port` in its own session."""
    worker = WorkerProcess(env, log)
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    worker.proc = subprocess.Popen(
        [sys.executable, "-m", "vasset", "worker", "--metrics-port", str(port)],
        env=worker.env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    out.close()
    worker.wait_event("metrics_listening", timeout=120)
    return worker


def scrape(url: str) -> Samples:
    """Every sample of one scrape, by (name, labels)."""
    r = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter appears with its first increment)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    stack = Stack(
        test_env,
        root,
        "metrics",
        VASSET_METRICS_TOKEN=TOKEN,
        VASSET_JANITOR_INTERVAL="1",
    )
    root.mkdir(parents=True, exist_ok=True)
    stack.cli("db", "upgrade")
    import json

    from tests.support.workers import open_slot_epoch

    stack.app = json.loads(stack.cli("apps", "create", "metrics", "--json"))
    open_slot_epoch(stack.env["VASSET_REDIS_URL"], stack.env["VASSET_REDIS_PREFIX"])
    stack.server = start_serve(stack.env, 2, root / "server.log")
    worker_port = free_port()
    worker = start_worker(stack.env, worker_port, root / "worker.log")
    stack.worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    yield stack
    worker.stop()
    settle(stack.env)
    stack.stop()


def _folder(port: int) -> Path:
    (found,) = Path(os.environ.get("TMPDIR", "/tmp")).glob(f"vasset-metrics-{port}-*")
    return found


def _per_process(folder: Path, name: str) -> dict[str, float]:
    """A counter's total in each server process's file (pid -> value)."""
    totals: dict[str, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = path.stem.split("_")[1]
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == name:
                    totals[pid] = totals.get(pid, 0.0) + sample.value
    return totals


def check_counters_move_by_what_was_done(stack, tmp_path_factory):
    api_url = stack.server.url + "/metrics"
    api = stack.api()
    before, worker_before = scrape(api_url), scrape(stack.worker_url)

    # A part-mode upload that is transcoded, and one whose MD5 does not match.
    clip = medium_clip(media.shared_dir(tmp_path_factory)).read_bytes()
    done = api.upload("clip.mp4", clip, PSIZE, auto=1)
    assert done["status"] == "uploaded", done
    bad = os.urandom(250_000)
    init = api.init("bad.mp4", bad, PSIZE, with_hash=False, hash=hashlib.md5(b"x").hexdigest())
    upid = init.json()["upload_id"]
    for pseq in range(1, 4):
        last = api.put_part(upid, pseq, bad[(pseq - 1) * PSIZE : pseq * PSIZE])
    assert last.json()["code"] == "HashMismatch", last.text
    # A tus upload in two PATCHes.
    tus_data = os.urandom(300_000)
    tus = Tus(stack.server.port, get_ticket(api))
    path = tus.new(len(tus_data))
    tus.upload(path, tus_data, [120_000])
    # An upload that the janitor expires.
    stale = api.init("stale.mp4", b"s" * PSIZE, PSIZE).json()["upload_id"]
    sql(stack.env, "UPDATE upload SET expires_at = 1 WHERE upload_id = :u", u=stale)
    wait_until(
        lambda: (
            api.call("GET", "/video/status", {"vid": done["vid"]}).json()["status"] == "playable"
        ),
        120,
        "the transcode",
        interval=0.3,
    )
    unknown = f"/nope-{secrets.token_hex(6)}"
    assert httpx.get(stack.server.url + unknown).status_code == 404

    def worker_settled() -> Samples | None:
        now = scrape(stack.worker_url)
        expired = value(now, "vasset_janitor_removed_total", kind="expired_uploads")
        return now if expired > value(worker_before, "vasset_janitor_removed_total") else None

    worker_after = wait_until(worker_settled, 30, "a janitor pass", interval=0.5)
    after = scrape(api_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sent = len(clip) + len(bad) + len(tus_data)
    assert moved("vasset_upload_bytes_received_total") == sent
    assert moved("vasset_uploads_created_total") == 4
    assert moved("vasset_uploads_completed_total") == 2
    assert moved("vasset_uploads_failed_total", reason="HashMismatch") == 1
    # Route labels are templates: never an upload id or an unknown raw path.
    path_route = "/files/{upload_id}"
    routes = {dict(labels)["route"] for _, labels in after if "route" in dict(labels)}
    assert {"/video/upload/upload", "/files", path_route, "unmatched"} <= routes
    assert not [r for r in routes if upid in r or path.rsplit("/", 1)[-1] in r or "nope" in r]
    parts = -(-len(clip) // PSIZE) + 3
    put = ("vasset_http_requests_total", "/video/upload/upload", "PUT")
    assert moved(put[0], route=put[1], method=put[2], status="200") == parts - 1
    assert moved(put[0], route=put[1], method=put[2], status="422") == 1  # the MD5 mismatch
    assert moved("vasset_http_requests_total", route="unmatched", method="GET", status="404") == 1
    patches = value(after, "vasset_http_request_seconds_count", route=path_route, method="PATCH")
    assert patches == 2
    assert value(after, "vasset_api_processes") == 2
    assert value(after, "process_resident_memory_bytes") > 0

    # Shared truth from MySQL and Redis, read at scrape time.
    # Scrape-time figures are cached for 2 s per process: scrape again until past the cache.
    def jobs_counted() -> Samples | None:
        now = scrape(api_url)
        grown = value(now, "vasset_transcode_jobs", state="succeeded") > value(
            before, "vasset_transcode_jobs", state="succeeded"
        )
        return now if grown else None

    jobs = wait_until(jobs_counted, 10, "the succeeded job in a scrape", interval=0.5)
    succeeded = value(jobs, "vasset_transcode_jobs", state="succeeded") - value(
        before, "vasset_transcode_jobs", state="succeeded"
    )
    assert succeeded >= 1
    assert value(after, "vasset_ffmpeg_slots_limit", scope="global") == 2
    assert ("vasset_ffmpeg_slots_in_use", frozenset()) in after
    assert value(after, "vasset_storage_free_bytes") > 0

    # The worker: its jobs, its janitor pass, its own FFmpeg cap.
    def w_moved(name: str, **labels: str) -> float:
        return value(worker_after, name, **labels) - value(worker_before, name, **labels)

    assert w_moved("vasset_transcode_job_seconds_count", outcome="succeeded") == succeeded
    assert w_moved("vasset_uploads_failed_total", reason="expired") == 1
    assert w_moved("vasset_janitor_removed_total", kind="expired_uploads") == 1
    assert ("vasset_ffmpeg_slots_limit", frozenset({("scope", "node")})) in worker_after
    assert value(worker_after, "process_cpu_seconds_total") > 0


def check_both_processes_count_and_the_scrape_sums_them(stack):
    """Parts sent on fresh connections reach both processes; /metrics is the sum of their files."""
    folder = _folder(stack.server.port)
    name = "vasset_upload_bytes_received_total"

    def both_received() -> bool:
        data = os.urandom(2 * PSIZE)
        upid = stack.api().init("spread.mp4", data, PSIZE).json()["upload_id"]
        for pseq in (1, 2):
            part = data[(pseq - 1) * PSIZE : pseq * PSIZE]
            assert stack.api().put_part(upid, pseq, part).status_code == 200  # a new connection
        return len([v for v in _per_process(folder, name).values() if v > 0]) >= 2

    wait_until(both_received, 60, "parts received by both API processes", interval=0)
    files = _per_process(folder, name)
    assert sum(files.values()) == value(scrape(stack.server.url + "/metrics"), name)


def check_the_token_on_both_endpoints(stack):
    for url in (stack.server.url + "/metrics", stack.worker_url):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = httpx.get(url, headers=headers)
            assert r.status_code == 401, (url, headers)
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    r = httpx.get(stack.server.url + "/metrics")
    assert r.json()["code"] == "InvalidMetricsToken"


def check_metrics_are_left_out_of_the_schema(stack):
    document = httpx.get(stack.server.url + "/schema/openapi.json").json()
    assert "/metrics" not in document["paths"]
    assert "/ready" in document["paths"]


def test_metrics_of_two_api_processes_and_a_worker(stack, tmp_path_factory):
    """One stack for every check (starting `serve --workers 2` and a worker is the slow part)."""
    check_counters_move_by_what_was_done(stack, tmp_path_factory)
    check_both_processes_count_and_the_scrape_sums_them(stack)
    check_the_token_on_both_endpoints(stack)
    check_metrics_are_left_out_of_the_schema(stack)
