"""Both wheels, built and installed into a fresh venv outside the checkout, work on their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.db import drop_database, sql
from tests.support.server import ROOT, free_port

MYSQL_BASE = os.environ.get("VASSET_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306")
MAX_WHEEL_BYTES = 5 * 1024 * 1024


def run(args: list, cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    """Run a command, failing the test with its output when it fails."""
    out = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Wheels of vasset and the Python SDK, installed (with their dependencies) in a new venv."""
    work = tmp_path_factory.mktemp("packaging")
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "-q", "--no-deps", "-w", dist, ROOT, ROOT / "clients" / "python"], work)
    wheels = {p.name.split("-")[0]: p for p in dist.glob("*.whl")}
    assert set(wheels) == {"vasset", "vasset_client"}, wheels
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], work)
    python = venv / "bin" / "python"
    run(
        [*pip, "--python", python, "install", "-q", wheels["vasset"], wheels["vasset_client"]], work
    )
    return {"work": work, "wheels": wheels, "bin": venv / "bin", "python": python}


def test_wheel_holds_migrations_and_console_assets_and_stays_small(installed):
    wheel = installed["wheels"]["vasset"]
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "vasset/migrations/001_init.sql",
        "vasset/migrations/002_jobs.sql",
        "vasset/static/console/vasset.js",
        "vasset/static/console/app.js",
        "vasset/static/vendor/hls.min.js",
    } <= names
    assert not [n for n in names if "node_modules" in n or n.startswith("tests/")]
    # The installed copy, not the checkout, is what runs.
    where = run([installed["python"], "-c", "import vasset; print(vasset.__file__)"], Path("/"))
    module = Path(where.strip())
    assert not module.is_relative_to(ROOT) and module.is_relative_to(installed["work"])


def test_installed_vasset_migrates_serves_and_works(installed):
    work, bin_ = installed["work"], installed["bin"]
    tag = f"{os.getpid()}_{time.monotonic_ns() % 10**8}"
    env = {
        "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_pkg_{tag}",
        "VASSET_REDIS_PREFIX": f"vpkg:{tag}:",
        "VASSET_STORAGE_URL": f"file://{work / 'storage'}",
        "VASSET_TEMP_DIR": str(work / "tmp"),
        "VASSET_CONSOLE_KEY": "packaging-test-console-key",
        "PYTHONPATH": "",
    }
    procs: list[subprocess.Popen] = []
    try:
        applied = json.loads(run([bin_ / "vasset", "db", "upgrade"], work, env))["applied"]
        assert applied[:2] == ["001_init.sql", "002_jobs.sql"]
        tables = {r[0] for r in sql(env, "SHOW TABLES")}
        assert {"video", "upload", "transcode_job", "schema_migration"} <= tables
        app = json.loads(run([bin_ / "vasset", "apps", "create", "pkg", "--json"], work, env))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        for args in (["serve", "--port", str(port)], ["worker"]):
            procs.append(
                subprocess.Popen(
                    [bin_ / "vasset", *args],
                    cwd=work,
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for name, source in (
            ("hls.min.js", ROOT / "vasset" / "static" / "vendor" / "hls.min.js"),
            ("vasset.js", ROOT / "clients" / "js" / "vasset.js"),
        ):
            r = httpx.get(f"{url}/console/static/{name}")
            assert r.status_code == 200 and r.content == source.read_bytes(), name
        # The installed SDK's CLI talks to the installed server.
        creds = [f"--url={url}", f"--app-key={app['app_key']}", f"--app-secret={app['app_secret']}"]
        limits = json.loads(run([bin_ / "vasset-cli", *creds, "limits"], work))
        assert limits["max_part_count"] == 10_000
        clip = work / "clip.bin"
        clip.write_bytes(os.urandom(300_000))
        cmd = [bin_ / "vasset-cli", *creds, "upload", clip, "--no-progress"]
        uploaded = json.loads(run([*cmd, "--state-dir", work / "state"], work))
        assert uploaded["status"] == "uploaded" and uploaded["size"] == 300_000
        assert procs[1].poll() is None, "the installed worker stopped"
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            assert proc.wait(timeout=15) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        drop_database(env["VASSET_DATABASE_URL"])
