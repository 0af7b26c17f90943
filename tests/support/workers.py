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

from tests.support.server import ROOT

FAST_WORKER_ENV = {
    "VASSET_JOB_HEARTBEAT": "1",
    "VASSET_JOB_LEASE": "4",
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
