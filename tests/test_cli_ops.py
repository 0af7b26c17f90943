"""The `vasset` command as an operator meets it: errors in one line, ports, SIGTERM, jobs list."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.db import drop_database, sql
from tests.support.orphans import die_with_parent
from tests.support.server import ROOT, free_port

MYSQL_BASE = os.environ.get("VASSET_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306")


def vasset(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 60):
    """Run the real CLI; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "vasset", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args", [("apps", "create", "x"), ("apps", "disable", "k"), ("jobs", "list"), ("janitor",)]
)
def test_admin_commands_name_a_missing_database_in_one_line(test_env, args):
    env = {**test_env, "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_missing_{os.getpid()}"}
    out = vasset(env, *args)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"vasset {args[0]}: database error: Unknown database 'vasset_missing_{os.getpid()}'"
    ]


def test_unreachable_database_is_one_line_too(test_env):
    env = {**test_env, "VASSET_DATABASE_URL": f"mysql+asyncmy://root@127.0.0.1:{free_port()}/x"}
    out = vasset(env, "db", "upgrade")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("vasset db: database error: Can't connect to MySQL server")


def test_upgrade_without_migrations_is_an_error(test_env, tmp_path):
    from vasset.db import MigrationsMissing, create_engine, upgrade

    async def attempt() -> None:
        engine = create_engine(test_env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            await upgrade(engine, tmp_path)
        finally:
            await engine.dispose()

    with pytest.raises(MigrationsMissing, match="no migrations found"):
        asyncio.run(attempt())


def test_jobs_list_shows_open_jobs_by_default(test_env):
    now = time.time()
    ids = {}
    for state in ("failed", "queued", "running", "succeeded", "cancelled"):
        sql(
            test_env,
            "INSERT INTO transcode_job (app_id, video_id, kind, state, error, create_time,"
            " update_time, lease_until) VALUES (1, 999999, 'transcode', :s, :e, :t, :t, :l)",
            s=state,
            e="CorruptMedia" if state == "failed" else None,
            t=now,
            l=now + 600 if state == "running" else None,
        )
        ids[state] = sql(test_env, "SELECT MAX(id) FROM transcode_job")[0][0]
    listed = json.loads(vasset(test_env, "jobs", "list", "--json").stdout)
    shown = {j["id"] for j in listed}
    assert {ids["failed"], ids["queued"], ids["running"]} <= shown
    assert not {ids["succeeded"], ids["cancelled"]} & shown
    text = vasset(test_env, "jobs", "list").stdout
    assert "CorruptMedia" in text
    every = {
        j["id"]
        for j in json.loads(vasset(test_env, "jobs", "list", "--state", "all", "--json").stdout)
    }
    assert set(ids.values()) <= every
    helptext = vasset(test_env, "jobs", "list", "--help").stdout
    assert "failed, stuck, running and queued" in " ".join(helptext.split())
    sql(test_env, "DELETE FROM transcode_job WHERE video_id = 999999")


def _start(env: dict[str, str], args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vasset", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy: {log.read_text()}")


def _hold_connections(port: int) -> list[socket.socket]:
    """An idle keep-alive connection and a request whose headers never finish."""
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert idle.recv(100).startswith(b"HTTP/1.1 200")
    stuck = socket.create_connection(("127.0.0.1", port))
    stuck.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    return [idle, stuck]


def _stop_within(proc: subprocess.Popen, seconds: float) -> float:
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"still running {seconds} s after SIGTERM") from None
    return time.monotonic() - started


@pytest.fixture
def private_env(test_env, tmp_path):
    """A database of the test's own (run creates it), storage and Redis prefix."""
    tag = f"{os.getpid()}_{time.monotonic_ns() % 10**8}"
    env = {
        **test_env,
        "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_cli_{tag}",
        "VASSET_REDIS_PREFIX": f"vcli:{tag}:",
        "VASSET_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "VASSET_TEMP_DIR": str(tmp_path / "tmp"),
        "VASSET_SHUTDOWN_GRACE": "3",
    }
    yield env
    drop_database(env["VASSET_DATABASE_URL"])


def test_serve_prints_its_address_refuses_a_taken_port_and_stops_on_sigterm(private_env, tmp_path):
    assert vasset(private_env, "db", "upgrade").returncode == 0
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _start(private_env, ["serve", "--port", str(port)], ROOT, log)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        assert f"listening on http://127.0.0.1:{port}" in log.read_text()
        second = vasset(private_env, "serve", "--port", str(port), timeout=30)
        assert second.returncode == 1
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert "Traceback" not in second.stderr
        held = _hold_connections(port)
        took = _stop_within(proc, 10)
        assert proc.returncode == 0, log.read_text()
        assert took < 10
        for sock in held:
            sock.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_run_stops_api_and_worker_on_sigterm(private_env, tmp_path):
    port = free_port()
    log = tmp_path / "run.log"
    proc = _start(private_env, ["run", "--port", str(port)], tmp_path, log)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        assert f"listening on http://127.0.0.1:{port}" in log.read_text()
        assert (tmp_path / "var" / "demo-app.json").exists()
        held = _hold_connections(port)
        _stop_within(proc, 10)
        for sock in held:
            sock.close()
        worker_pid = int(log.read_text().split("worker pid ")[1].split()[0])
        assert not Path(f"/proc/{worker_pid}").exists(), "the worker outlived run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("command", "variable", "value", "says"),
    [
        ("serve", "VASSET_DB_POOL_SIZE", "many", "VASSET_DB_POOL_SIZE='many': expected an integer"),
        ("worker", "VASSET_LADDER", "999p", "VASSET_LADDER is not a ladder"),
        ("run", "VASSET_JOB_LEASE", "-1", "VASSET_JOB_LEASE must be greater than 0"),
        ("serve", "VASSET_STORAGE_URL", "s3://b", "VASSET_STORAGE_URL must be file://PATH"),
        ("worker", "VASSET_HLS", "maybe", "VASSET_HLS='maybe': expected true or false"),
    ],
)
def test_a_bad_setting_stops_the_command_at_start(
    test_env, tmp_path, command, variable, value, says
):
    out = vasset({**test_env, variable: value}, command, cwd=tmp_path, timeout=30)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vasset {command}: {says}"), out.stderr
    assert not (tmp_path / "var").exists()  # run stopped before creating anything
