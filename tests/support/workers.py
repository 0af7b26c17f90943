"""Run `python -m vasset worker` subprocesses for tests: start, SIGTERM, SIGKILL, read their logs.

Workers log JSON lines (structlog) to their own file, so a test can wait for an event such as
``job_started`` or ``ffmpeg_slot_used`` and read its fields. FFmpeg children of a worker run in
their own session (the sandbox), so they are found through /proc: by parent pid, and by the
``VASSET_TEST_FLEET`` marker every worker of one fleet passes on in its environment.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.support.orphans import die_with_parent
from tests.support.server import ROOT

FAST_WORKER_ENV = {
    "VASSET_JOB_HEARTBEAT": "1",
    "VASSET_JOB_LEASE": "4",
    # Test clips move every second: a minute still is a hang (the watchdog hands the job on).
    "VASSET_JOB_STALL_TIMEOUT": "60",
    "VASSET_JOB_BACKOFF_BASE": "0.5",
    "VASSET_WORKER_POLL_INTERVAL": "0.2",
    "VASSET_LADDER": "360p,480p",
    "VASSET_IMAGE_COUNT": "3",
    "VASSET_LOG_LEVEL": "debug",
}


class WorkerProcess:
    """One `vasset worker` in its own session (so its whole process group can be killed)."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str = "worker") -> None:
        self.env = {**os.environ, **env}
        self.log_path = Path(log_path)
        self.name = name
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The worker's pid (also its process group id)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait: bool = True, timeout: float = 20) -> WorkerProcess:
        """Start the worker; with wait, return once it logged worker_started."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vasset", "worker"],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        out.close()
        if wait:
            self.wait_event("worker_started", timeout=timeout)
        return self

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def events(self, name: str | None = None) -> list[dict]:
        """Parsed log events so far (only those named name, when given)."""
        found = []
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def wait_event(
        self, name: str, timeout: float = 30, where: Callable[[dict], bool] | None = None
    ) -> dict:
        """The first event called name (matching where), waiting for it up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(name):
                if where is None or where(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {name!r} within {timeout}s\n{self.tail()}")
            if self.proc is not None and self.proc.poll() is not None and name != "worker_stopped":
                raise AssertionError(f"{self.name} exited ({self.proc.returncode})\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, lines: int = 40) -> str:
        """The last lines of the log (for assertion messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def terminate(self) -> None:
        """SIGTERM the worker alone (a graceful shutdown)."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for exit; returns the exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the worker's process group (a crash: no cleanup runs)."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL after timeout; also kills FFmpeg children left behind."""
        if self.proc is None:
            return
        children = ffmpeg_pids(parents={self.pid})
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in children:
            kill_group(pid)


def fleet_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """A worker env with the fast test timings and a fresh fleet marker (see ffmpeg_pids)."""
    return {
        **base,
        **FAST_WORKER_ENV,
        "VASSET_TEST_FLEET": secrets.token_hex(6),
        **extra,
    }


def kill_group(pid: int) -> None:
    """SIGKILL a process group (FFmpeg runs as its own group leader)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields resume after the last ')'.
    return int(data[data.rindex(b")") + 2 :].split()[1])


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _is_ffmpeg(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            comm = fh.read().strip()
        if comm != b"ffmpeg":
            return False
        # A zombie still shows its comm; it runs nothing and holds nothing.
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        return data[data.rindex(b")") + 2 :][:1] != b"Z"
    except OSError:
        return False


def ffmpeg_pids(fleet: str | None = None, parents: Iterable[int] = ()) -> list[int]:
    """Live FFmpeg processes of a fleet (by env marker) or whose parent is one of parents."""
    parents = set(parents)
    marker = f"VASSET_TEST_FLEET={fleet}".encode() + b"\0" if fleet else None
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if not _is_ffmpeg(pid):
            continue
        if (parents and _ppid(pid) in parents) or (
            marker is not None and marker in _environ(pid) + b"\0"
        ):
            found.append(pid)
    return found


class FfmpegSampler:
    """Counts a fleet's FFmpeg processes every interval in a thread; keeps the maximum."""

    def __init__(self, fleet: str, interval: float = 0.02) -> None:
        import threading

        self.fleet = fleet
        self.interval = interval
        self.max = 0
        self.samples = 0
        self.history: list[tuple[float, int]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._halt.is_set():
            count = len(ffmpeg_pids(self.fleet))
            self.samples += 1
            if count > self.max:
                self.max = count
            if not self.history or self.history[-1][1] != count:
                self.history.append((time.monotonic(), count))
            time.sleep(self.interval)

    def __enter__(self) -> FfmpegSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join()


class Fleet:
    """Several workers sharing one env; stops them all (and strays of theirs) on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = Path(log_dir)
        self.workers: list[WorkerProcess] = []

    @property
    def marker(self) -> str:
        """The fleet's VASSET_TEST_FLEET value."""
        return self.env["VASSET_TEST_FLEET"]

    def start(self, count: int = 1, wait: bool = True, **extra: str) -> list[WorkerProcess]:
        """Start count more workers (extra env on top of the fleet's)."""
        new = []
        for _ in range(count):
            n = len(self.workers)
            worker = WorkerProcess(
                {**self.env, **extra}, self.log_dir / f"worker{n}.log", name=f"worker{n}"
            )
            self.workers.append(worker)
            new.append(worker.start(wait=False))
        if wait:
            for worker in new:
                worker.wait_event("worker_started")
        return new

    def events(self, name: str | None = None) -> list[dict]:
        """Events of every worker, each tagged with its worker's name."""
        out = []
        for worker in self.workers:
            out += [{**e, "_worker": worker.name} for e in worker.events(name)]
        return out

    def stop(self) -> None:
        """Stop every worker, then kill any FFmpeg of the fleet still running."""
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop(timeout=15)
        for pid in ffmpeg_pids(self.marker):
            kill_group(pid)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def job_ffmpeg(job_id: int, ladder: bool = True) -> list[int]:
    """Live FFmpeg processes writing a job's outputs (the ladder run only, by default)."""
    found = []
    needle = f"/job-{int(job_id)}-".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not _is_ffmpeg(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if needle in cmdline and (not ladder or b"-filter_complex" in cmdline):
            found.append(int(entry))
    return found


def open_slot_epoch(redis_url: str, prefix: str) -> None:
    """Let a brand-new Redis prefix hand out FFmpeg slots at once.

    The slot semaphore cannot tell a new deployment from a Redis that lost its sets, so its
    first acquisition waits one slot lease (6 s here). A fresh test prefix has no FFmpeg running
    anywhere, so there is nothing to wait for; tests of the reset itself must not call this.
    """
    import redis

    from vasset import redis_keys

    client = redis.Redis.from_url(redis_url)
    try:
        client.set(redis_keys.slots_epoch(prefix), 0, nx=True)
    finally:
        client.close()


class Stack:
    """A private vasset deployment for one test module: database, Redis prefix, storage, API.

    Jobs live in the database, so only workers started with ``env`` (see Fleet) take its jobs.
    """

    def __init__(self, base_env: dict[str, str], root: Path, name: str, **extra: str) -> None:
        base_url = base_env["VASSET_DATABASE_URL"].rsplit("/", 1)[0]
        session_db = base_env["VASSET_DATABASE_URL"].rsplit("/", 1)[1]
        self.db_name = f"{session_db}_{name}"
        self.root = Path(root)
        self.env = fleet_env(
            {
                "VASSET_DATABASE_URL": f"{base_url}/{self.db_name}",
                "VASSET_REDIS_URL": base_env["VASSET_REDIS_URL"],
                "VASSET_REDIS_PREFIX": f"{base_env['VASSET_REDIS_PREFIX']}{name}:",
                "VASSET_STORAGE_URL": f"file://{self.root / 'storage'}",
                "VASSET_TEMP_DIR": str(self.root / "tmp"),
            },
            **extra,
        )
        self.server = None
        self.app: dict = {}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run `python -m vasset ARGS` against this stack; returns stdout."""
        out = subprocess.run(
            [sys.executable, "-m", "vasset", *args],
            env={**os.environ, **(env or self.env)},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout

    def start(self) -> Stack:
        """Create the database and an app, start the API."""
        from tests.support.server import ServerProcess

        self.root.mkdir(parents=True, exist_ok=True)
        self.cli("db", "upgrade")
        self.app = json.loads(self.cli("apps", "create", "workers", "--json"))
        open_slot_epoch(self.env["VASSET_REDIS_URL"], self.env["VASSET_REDIS_PREFIX"])
        self.server = ServerProcess(self.env, log_path=self.root / "server.log").start()
        return self

    def api(self):
        """A signing client of the stack's app."""
        from tests.support.api import Api

        assert self.server is not None
        return Api(self.server.url, self.app["app_key"], self.app["app_secret"])

    @property
    def storage(self) -> Path:
        """Root of the local store's objects."""
        return Path(self.env["VASSET_STORAGE_URL"][len("file://") :]) / "objects"

    @property
    def temp_dir(self) -> Path:
        """The workers' VASSET_TEMP_DIR."""
        return Path(self.env["VASSET_TEMP_DIR"])

    def fleet(self, name: str, **extra: str) -> Fleet:
        """A fleet of workers on this stack (extra env on top), logging under root/name."""
        marker = {"VASSET_TEST_FLEET": secrets.token_hex(6)}
        return Fleet({**self.env, **marker, **extra}, self.root / name)

    def stop(self) -> None:
        """Stop the API and drop the database."""
        from tests.support.db import drop_database

        if self.server is not None:
            self.server.stop()
        drop_database(self.env["VASSET_DATABASE_URL"])
        import redis

        client = redis.Redis.from_url(self.env["VASSET_REDIS_URL"])
        try:
            keys = list(client.scan_iter(match=self.env["VASSET_REDIS_PREFIX"] + "*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll check() until it returns something truthy; returns it, or fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def settle(env: dict[str, str]) -> None:
    """End a test's leftovers: cancel live jobs, retire videos still waiting for a transcode.

    Without this a later test's workers would pick up the jobs, or the reaper's safety net
    would queue new ones for videos left in transcode_queued.
    """
    from tests.support.db import sql

    now = time.time()
    sql(
        env,
        "UPDATE transcode_job SET state = 'cancelled', lease_token = lease_token + 1,"
        " error = 'test teardown', finished_at = :now WHERE state IN ('queued', 'running')",
        now=now,
    )
    sql(
        env,
        "UPDATE video SET deleted_at = :now WHERE deleted_at IS NULL"
        " AND status IN ('transcode_queued', 'transcoding')",
        now=int(now),
    )


def medium_clip(directory: str | os.PathLike[str]) -> Path:
    """640x360, 3 s, H.264 + AAC: big enough for a two-rung ladder (240p and 360p)."""
    from tests import media

    # media's cache-and-rename helpers keep parallel xdist workers from seeing half a file.
    return media._cached(directory, "medium_360p.mp4", lambda p: media._av_clip(p, "640x360", 3))


def long_clip(directory: str | os.PathLike[str]) -> Path:
    """640x360, 15 s: a ladder run lasting a few seconds, to kill or cancel in the middle."""
    from tests import media

    return media._cached(directory, "long_360p.mp4", lambda p: media._av_clip(p, "640x360", 15))
