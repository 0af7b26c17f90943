"""Bench: webhook latency (state change -> arrival) and delivery throughput, with a real worker.

1. Latency: an idle `vasset worker` and a local receiver; N signed state changes
   (POST /video/upload/init writes upload.created) spaced out so the worker idles in between;
   latency is the receiver's arrival time minus the event's own timestamp (written in the
   change's transaction). Target: p95 under 1 s.
2. Throughput: 10,000 events written through the outbox (outbox.emit, 500 per transaction)
   while no worker runs, then one worker delivers them all to the receiver. Target: at least
   500 events/s; also CPU seconds the worker process spent per 1,000 events.

Usage: .venv/bin/python bench/events.py [--changes 50] [--events 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import app_of, bench_env, drop_database  # noqa: E402
from tests.support.api import Api  # noqa: E402
from tests.support.db import sql  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.webhooks import Receiver, new_secret  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

LATENCY_P95_TARGET = 1.0
THROUGHPUT_TARGET = 500.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def add_endpoint(env: dict[str, str], app_id: int, url: str, secret: str) -> None:
    """Register the receiver for every event type."""
    sql(
        env,
        "INSERT INTO webhook_endpoint (app_id, url, events, secret, enabled, create_time)"
        " VALUES (:a, :u, '*', :s, 1, :now)",
        a=app_id,
        u=url,
        s=secret,
        now=int(time.time()),
    )


def bench_latency(env: dict[str, str], api: Api, hook: Receiver, changes: int) -> list[float]:
    """Seconds from each upload.created event's timestamp to its arrival."""
    base = len(hook.deliveries)
    for i in range(changes):
        r = api.init(f"bench-{i}.mp4", os.urandom(1000), 1000)
        r.raise_for_status()
        time.sleep(0.3 + (i % 5) * 0.07)  # unaligned with the poll: the worker is idle again
    got = hook.wait(base + changes, timeout=30)[base:]
    latencies = []
    for d in got:
        stamp = datetime.fromisoformat(d.event["timestamp"].replace("Z", "+00:00")).timestamp()
        latencies.append(d.at - stamp)
    return latencies


async def write_events(env: dict[str, str], vid: int, count: int, batch: int = 500) -> None:
    """count progress events of vid through the outbox (each fans out one delivery)."""
    from vasset.db import create_engine, transaction
    from vasset.events import outbox
    from vasset.events.types import EventType

    engine = create_engine(env["VASSET_DATABASE_URL"], pool_size=1)
    try:
        for start in range(0, count, batch):
            async with transaction(engine) as conn:
                for i in range(start, min(count, start + batch)):
                    await outbox.emit(conn, vid, EventType.TRANSCODE_PROGRESS, progress=i % 100)
    finally:
        await engine.dispose()


def main() -> int:
    """Run both parts; print figures, targets and pass/fail."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vasset-bench-events-"))
    env = bench_env(tmp, VASSET_WEBHOOK_ALLOW_HOSTS="127.0.0.1")
    app = app_of(env)
    worker_env = {**env, "VASSET_LOG_LEVEL": "info"}
    secret = new_secret()
    server = ServerProcess(env, log_path=tmp / "api.log").start()
    ok = True
    try:
        with Receiver([secret]) as hook:
            add_endpoint(env, int(app["id"]), hook.url, secret)
            api = Api(server.url, app["app_key"], app["app_secret"], check_contract=False)
            worker = WorkerProcess(worker_env, tmp / "worker1.log").start()
            worker.wait_event("deliverer_started")
            time.sleep(1.0)
            lat = bench_latency(env, api, hook, args.changes)
            p50, p95 = statistics.median(lat), pct(lat, 95)
            passed = p95 < LATENCY_P95_TARGET
            ok &= passed
            print(
                f"latency ({len(lat)} changes, idle worker): p50 {p50 * 1000:.0f} ms,"
                f" p95 {p95 * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
                f"  target p95 < {LATENCY_P95_TARGET * 1000:.0f} ms:"
                f" {'PASS' if passed else 'FAIL'}"
            )
            worker.stop()

            vid = sql(env, "SELECT MAX(id) FROM video")[0][0]
            started = time.monotonic()
            asyncio.run(write_events(env, vid, args.events))
            wrote = time.monotonic() - started
            print(
                f"outbox: {args.events} events written in {wrote:.1f} s"
                f" ({args.events / wrote:.0f}/s, 500 per transaction)"
            )
            base = len(hook.deliveries)
            worker = WorkerProcess(worker_env, tmp / "worker2.log").start()
            worker.wait_event("deliverer_started")
            cpu0, t0 = cpu_seconds(worker.pid), time.monotonic()
            hook.wait(base + args.events, timeout=600)
            elapsed, cpu = time.monotonic() - t0, cpu_seconds(worker.pid) - cpu0
            worker.stop()
            rate = args.events / elapsed
            passed = rate >= THROUGHPUT_TARGET and not hook.unverified
            ok &= passed
            print(
                f"throughput: {args.events} deliveries in {elapsed:.1f} s = {rate:.0f}/s,"
                f" worker CPU {cpu / args.events * 1000:.2f} s per 1,000 events,"
                f" {len(hook.unverified)} unverified"
                f"  target >= {THROUGHPUT_TARGET:.0f}/s: {'PASS' if passed else 'FAIL'}"
            )
            pending = sql(env, "SELECT COUNT(*) FROM webhook_delivery WHERE status <> 'succeeded'")
            print(f"deliveries not settled as succeeded: {pending[0][0]}")
    finally:
        server.stop()
        drop_database(env)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
