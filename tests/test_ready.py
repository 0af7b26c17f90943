"""GET /ready against real dependencies, and `vasset run` announcing itself only once ready.

Redis is a private redis-server the tests stop and start; the migration check is bent by
deleting a row of the test database's own schema_migration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.support.db import drop_database, sql
from tests.support.orphans import die_with_parent
from tests.support.redis_server import RedisServer
from tests.support.server import ROOT, ServerProcess, free_port
from tests.support.workers import Stack, wait_until


def ready(server: ServerProcess) -> tuple[int, dict]:
    """(status, body) of GET /ready."""
    r = httpx.get(server.url + "/ready", timeout=10)
    return r.status_code, r.json()


def failing(body: dict) -> set[str]:
    """Names of the checks that are not ok."""
    return {name for name, what in body["checks"].items() if what != "ok"}


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(test_env, redis_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("ready")
    stack = Stack(
        {**test_env, "VASSET_REDIS_URL": redis_server.url}, root, "ready", VASSET_LOG_LEVEL="info"
    )
    stack.start()
    yield stack
    stack.stop()


def test_ready_names_what_failed_and_recovers(stack, redis_server):
    server = stack.server
    status, body = ready(server)
    assert (status, body["ready"]) == (200, True), body
    assert set(body["checks"]) == {"database", "migrations", "redis", "storage", "disk"}
    assert failing(body) == set()

    redis_server.stop()
    try:
        status, body = ready(server)
        assert (status, body["ready"]) == (503, False), body
        assert failing(body) == {"redis"}, body
        # Liveness touches nothing: the process is alive even though it cannot work.
        assert httpx.get(server.url + "/health").json() == {"ok": True}
    finally:
        redis_server.start()  # same port: the pool reconnects
    wait_until(lambda: ready(server)[0] == 200, 30, "ready again after Redis came back")

    (latest,) = sql(stack.env, "SELECT MAX(version) FROM schema_migration")[0]
    row = sql(
        stack.env,
        "SELECT version, name, applied_at FROM schema_migration WHERE version = :v",
        v=latest,
    )
    sql(stack.env, "DELETE FROM schema_migration WHERE version = :v", v=latest)
    try:
        status, body = ready(server)
        assert (status, body["ready"]) == (503, False), body
        assert failing(body) == {"migrations"}, body
        assert body["checks"]["migrations"].startswith("behind: 1 migration")
        assert row[0][1] in body["checks"]["migrations"]  # names the missing file
    finally:
        sql(
            stack.env,
            "INSERT INTO schema_migration VALUES (:v, :n, :t)",
            v=row[0][0],
            n=row[0][1],
            t=row[0][2],
        )
    assert ready(server)[0] == 200


def test_a_disk_short_of_the_free_threshold_is_not_ready(stack):
    # No disk is 100 % free: the threshold alone decides, on the same storage and database.
    env = {**stack.env, "VASSET_READY_MIN_FREE_PERCENT": "100"}
    server = ServerProcess(env, log_path=stack.root / "full-disk.log").start(timeout=120)
    try:
        status, body = ready(server)
        assert (status, failing(body)) == (503, {"disk"}), body
        assert "VASSET_READY_MIN_FREE_PERCENT=100" in body["checks"]["disk"]
    finally:
        server.stop()


def test_vasset_run_says_it_is_up_only_once_ready(test_env, tmp_path):
    """With Redis down `vasset run` serves but says what is not ready; up once Redis is back."""
    redis = RedisServer()  # a free port, not started yet
    port = free_port()
    base = test_env["VASSET_DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "VASSET_DATABASE_URL": f"{base}/vasset_run_ready_{os.getpid()}",
        "VASSET_REDIS_URL": redis.url,
        "VASSET_REDIS_PREFIX": "runready:",
        "VASSET_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "VASSET_TEMP_DIR": str(tmp_path / "tmp"),
        "VASSET_LOG_LEVEL": "error",
        "PYTHONPATH": str(ROOT),
    }
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "vasset", "run", "--port", str(port)],
        env=env,
        cwd=tmp_path,  # `run` keeps its demo app in ./var
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic(), line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def said(start: str) -> float | None:
        return next((at for at, line in lines if line.startswith(start)), None)

    try:
        wait_until(lambda: said("vasset is not ready yet:"), 120, "the not-ready line")
        reason = next(line for _, line in lines if line.startswith("vasset is not ready yet:"))
        assert "redis:" in reason and "database:" not in reason, reason
        assert said("vasset is up") is None
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # it serves
        redis.start()
        started = time.monotonic()
        up = wait_until(lambda: said("vasset is up"), 60, "the up-line")
        assert up >= started
        assert any(line == f"vasset is up: http://127.0.0.1:{port}" for _, line in lines), lines
        assert httpx.get(f"http://127.0.0.1:{port}/ready").json()["ready"] is True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        redis.stop()
        drop_database(env["VASSET_DATABASE_URL"])
    assert json.loads((tmp_path / "var" / "demo-app.json").read_text())["app_key"]
