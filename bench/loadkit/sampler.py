"""Samples /proc in a thread: FFmpeg processes under the run's workers, peak RSS per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of pid (over all its threads: any thread may have spawned one)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below pid."""
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def _stat(pid: int) -> tuple[str, str] | None:
    """(comm, state) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode(errors="replace")
    return comm, data[data.rindex(b")") + 2 :][:1].decode()


def is_ffmpeg(pid: int) -> bool:
    """A live (not zombie) FFmpeg process."""
    stat = _stat(pid)
    return stat is not None and stat[0] == "ffmpeg" and stat[1] != "Z"


def rss(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcSampler(threading.Thread):
    """Every interval: counts FFmpeg processes below the given workers, peak RSS per label.

    An API's RSS is its process tree (granian runs the app in a child); a worker's excludes
    its FFmpeg children, which are counted, not weighed.
    """

    def __init__(
        self,
        processes: Callable[[], dict[str, int]],
        workers: Callable[[], list[int]],
        interval: float = 0.1,
    ) -> None:
        super().__init__(daemon=True, name="proc-sampler")
        self.processes = processes
        self.workers = workers
        self.interval = interval
        self.max_ffmpeg = 0
        self.samples = 0
        self.peak_rss: dict[str, int] = {}
        #: Worker pids that had an FFmpeg below them at the last sample.
        self.busy_workers: set[int] = set()
        self._halt = threading.Event()

    def sample(self) -> None:
        """One look at /proc."""
        busy, count = set(), 0
        for wpid in self.workers():
            running = [p for p in descendants(wpid) if is_ffmpeg(p)]
            if running:
                busy.add(wpid)
                count += len(running)
        self.busy_workers = busy
        self.max_ffmpeg = max(self.max_ffmpeg, count)
        for label, pid in self.processes().items():
            tree = [pid] + [p for p in descendants(pid) if not is_ffmpeg(p)]
            total = sum(rss(p) for p in tree)
            self.peak_rss[label] = max(self.peak_rss.get(label, 0), total)
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            time.sleep(self.interval)

    def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self._halt.set()
        self.join()
        self.sample()
