"""A private deployment for a load run: own database, own redis-server, N APIs and M workers.

Everything runs as real processes on 127.0.0.1 and can be killed and restarted: an API comes
back on the same port (clients keep their URLs), a killed worker is replaced by a new one, and
Redis restarts empty on the same port (as after a crash without persistence).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.db import drop_database
from tests.support.redis_server import RedisServer
from tests.support.server import ROOT, ServerProcess
from tests.support.stack import FAST_WORKER, MYSQL_BASE
from tests.support.workers import WorkerProcess, open_slot_epoch

#: Short leases and heartbeats (the test stack's): a killed worker's job is taken over in
#: seconds, not minutes; a smaller ladder and the bench's global FFmpeg cap of 2.
WORKER_ENV = {
    **FAST_WORKER,
    "VASSET_FFMPEG_GLOBAL_LIMIT": "2",
    "VASSET_LADDER": "240p,360p",
    "VASSET_IMAGE_COUNT": "2",
}


class Deployment:
    """Start with .start(); kill and restart parts while clients run; .stop() removes it all."""

    def __init__(self, root: Path, apis: int = 2, workers: int = 3, **extra: str) -> None:
        self.root = Path(root)
        self.tag = secrets.token_hex(4)
        self.redis = RedisServer()
        self.env: dict[str, str] = {
            "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_load_{self.tag}",
            "VASSET_REDIS_URL": self.redis.url,
            "VASSET_REDIS_PREFIX": f"vload:{self.tag}:",
            "VASSET_STORAGE_URL": f"file://{self.root / 'storage'}",
            "VASSET_TEMP_DIR": str(self.root / "tmp"),
            "VASSET_LOG_LEVEL": "info",
            **WORKER_ENV,
            **extra,
        }
        self.n_apis = apis
        self.n_workers = workers
        self.apis: list[ServerProcess] = []
        self.workers: list[WorkerProcess] = []
        self.app: dict = {}
        self._lock = threading.Lock()

    @property
    def storage(self) -> Path:
        """Where the local store keeps its objects."""
        return self.root / "storage" / "objects"

    @property
    def api_urls(self) -> list[str]:
        """Base URLs of the API instances (stable across restarts)."""
        return [api.url for api in self.apis]

    def _cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "vasset", *args],
            env={**os.environ, **self.env},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return out.stdout

    def start(self) -> Deployment:
        """Redis, database and app, the APIs, then the workers (each waits until it is up)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self._cli("db", "upgrade")
        self.app = json.loads(self._cli("apps", "create", "load", "--json"))
        # A brand-new prefix has no FFmpeg anywhere: let the first slot go at once.
        open_slot_epoch(self.redis.url, self.env["VASSET_REDIS_PREFIX"])
        for i in range(self.n_apis):
            api = ServerProcess(self.env, log_path=self.root / f"api{i}.log")
            self.apis.append(api.start(timeout=60))
        for _ in range(self.n_workers):
            self.start_worker(wait=False)
        for worker in self.workers:
            worker.wait_event("worker_started", timeout=60)
        return self

    def start_worker(self, wait: bool = True) -> WorkerProcess:
        """One more worker (its own log file)."""
        n = len(self.workers)
        worker = WorkerProcess(self.env, self.root / f"worker{n}.log", name=f"worker{n}")
        with self._lock:
            self.workers.append(worker)
        return worker.start(wait=wait, timeout=60)

    def kill_api(self, index: int) -> None:
        """SIGKILL one API instance (its whole process group)."""
        self.apis[index].kill()

    def restart_api(self, index: int) -> None:
        """Start the API again on the same port."""
        old = self.apis[index]
        api = ServerProcess(self.env, port=old.port, log_path=old.log_path)
        self.apis[index] = api.start(timeout=60)

    def kill_worker(self, worker: WorkerProcess) -> None:
        """SIGKILL a worker's process group (its FFmpeg dies with it: parent-death signal)."""
        worker.kill()

    def restart_redis(self, down: float = 1.0) -> None:
        """Kill Redis (every key is gone), wait, and start an empty one on the same port."""
        self.redis.stop()
        time.sleep(down)
        self.redis.start()

    def live_workers(self) -> list[WorkerProcess]:
        """Workers whose process runs."""
        with self._lock:
            return [w for w in self.workers if w.alive()]

    def labelled_pids(self) -> dict[str, int]:
        """The pid of every live API and worker, by a stable label (for RSS sampling)."""
        found = {f"api{i}": a.proc.pid for i, a in enumerate(self.apis) if a.proc}
        with self._lock:
            found |= {w.name: w.pid for w in self.workers if w.alive()}
        return found

    def stop(self) -> None:
        """Stop workers and APIs, then drop the database and stop Redis."""
        with self._lock:
            workers = list(self.workers)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.stop(timeout=15)
        for api in self.apis:
            api.stop()
        try:
            drop_database(self.env["VASSET_DATABASE_URL"])
        finally:
            self.redis.stop()
