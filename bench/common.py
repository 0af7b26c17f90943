"""Bench helpers: a throwaway database, a real server process, RSS sampling."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess  # noqa: E402


def bench_env(tmp: Path, **extra: str) -> dict[str, str]:
    """VASSET_* for a bench run: own database, Redis prefix and storage dir."""
    tag = secrets.token_hex(4)
    env = {
        "VASSET_DATABASE_URL": f"mysql+asyncmy://root@127.0.0.1:3306/vasset_bench_{tag}",
        "VASSET_REDIS_PREFIX": f"vbench:{tag}:",
        "VASSET_STORAGE_URL": f"file://{tmp / 'storage'}",
        "VASSET_TEMP_DIR": str(tmp / "tmp"),
        "VASSET_LOG_LEVEL": "warning",
        **extra,
    }
    run = {**os.environ, **env}
    subprocess.run(
        [sys.executable, "-m", "vasset", "db", "upgrade"],
        env=run,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    out = subprocess.run(
        [sys.executable, "-m", "vasset", "apps", "create", "bench", "--json"],
        env=run,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    env["_APP"] = out.stdout
    return env


def drop_database(env: dict[str, str]) -> None:
    """Remove the bench database."""
    from tests.support.db import drop_database as drop

    drop(env["VASSET_DATABASE_URL"])


def app_of(env: dict[str, str]) -> dict:
    """The bench app's credentials."""
    return json.loads(env["_APP"])


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{p}/task/{p}/children") as fh:
                pids.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total


class RssSampler(threading.Thread):
    """Samples a process tree's RSS every 20 ms and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.02)

    def stop(self) -> int:
        """Stop sampling; returns the peak in bytes."""
        self._halt.set()
        self.join()
        return self.peak


__all__ = ["ROOT", "RssSampler", "ServerProcess", "app_of", "bench_env", "drop_database"]
