"""A private vasset stack for a test module: own database, storage, API and worker."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests.support.api import Api
from tests.support.db import drop_database
from tests.support.orphans import die_with_parent
from tests.support.server import ROOT, ServerProcess

MYSQL_BASE = os.environ.get("VASSET_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306")

FAST_WORKER = {
    "VASSET_JOB_HEARTBEAT": "1",
    "VASSET_JOB_LEASE": "5",
    "VASSET_JOB_BACKOFF_BASE": "0.5",
    "VASSET_WORKER_POLL_INTERVAL": "0.2",
    "VASSET_LADDER": "360p,480p",
    "VASSET_IMAGE_COUNT": "3",
}


class Stack:
    """Start with .start(); .api is a signing client of a fresh app; .stop() drops everything."""

    def __init__(self, root: Path, workers: int = 1, **env: str) -> None:
        self.tag = secrets.token_hex(4)
        self.root = root
        self.env = {
            "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_stack_{self.tag}",
            "VASSET_REDIS_URL": os.environ.get("VASSET_TEST_REDIS", "redis://127.0.0.1:6379/0"),
            "VASSET_REDIS_PREFIX": f"vstack:{self.tag}:",
            "VASSET_STORAGE_URL": f"file://{root / 'storage'}",
            "VASSET_TEMP_DIR": str(root / "tmp"),
            **FAST_WORKER,
            **env,
        }
        self.n_workers = workers
        self.server: ServerProcess | None = None
        self.workers: list[subprocess.Popen] = []
        self.app: dict = {}

    def _run(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "vasset", *args],
            env={**os.environ, **self.env},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def start(self) -> Stack:
        """Migrate, create an app, start the API and the workers."""
        self._run("db", "upgrade")
        self.app = json.loads(self._run("apps", "create", "stack", "--json"))
        self.server = ServerProcess(self.env, log_path=self.root / "api.log").start()
        for _ in range(self.n_workers):
            self.start_worker()
        return self

    def start_worker(self) -> subprocess.Popen:
        """One more `vasset worker` process (its own process group)."""
        log = open(self.root / f"worker-{len(self.workers)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "vasset", "worker"],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self.workers.append(proc)
        return proc

    @property
    def api(self) -> Api:
        """A signing client of the stack's app."""
        assert self.server is not None
        return Api(self.server.url, self.app["app_key"], self.app["app_secret"])

    def upload(self, path: Path, auto: bool = True, **extra) -> dict:
        """Upload a file (in 1 MiB parts); returns the completion answer."""
        data = Path(path).read_bytes()
        return self.api.upload(path.name, data, 1 << 20, auto=int(auto), **extra)

    def wait(self, vid: int, until: tuple[str, ...] = ("playable",), timeout: float = 120) -> dict:
        """Poll status until it is one of until (or a failure); returns the last status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.api.call("GET", "/video/status", {"vid": vid}).json()
            if status.get("status") in until or status.get("status") in (
                "transcode_failed",
                "upload_failed",
            ):
                return status
            time.sleep(0.2)
        raise TimeoutError(f"video {vid} stuck at {status}")

    def stop(self) -> None:
        """Stop processes and drop the database."""
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.server:
            self.server.stop()
        drop_database(self.env["VASSET_DATABASE_URL"])
