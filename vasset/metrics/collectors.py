"""Figures read at scrape time, and the text a scrape answers.

Queue depth and FFmpeg slots come from MySQL and Redis, so every instance reports the same
truth (aggregate them with max(), not sum()); a short cache keeps frequent scrapes of many
instances from turning into load. A source that cannot be read within a timeout is left out
of the answer (alert on ``absent()``) rather than reported stale.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from vasset.db import transaction
from vasset.metrics.registry import Metrics
from vasset.transcode import repository as jobs
from vasset.transcode.jobstate import JobState
from vasset.transcode.slots import SlotSemaphore

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)

#: Seconds a scrape may spend on one source, and seconds its figures are reused.
SOURCE_TIMEOUT = 2.0
CACHE_SECONDS = 2.0
_LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db")
_PID_FILE = re.compile(r"\w+_(\d+)\.db")


class SharedState:
    """Queue depth, FFmpeg slots and local disk space, refreshed at most every CACHE_SECONDS."""

    def __init__(self, ctx: Context, node_limit: int | None = None) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.node_limit = node_limit  # known on a worker only
        self.slots = SlotSemaphore(
            ctx.redis, s.redis_prefix, socket.gethostname(), s.ffmpeg_global_limit, 1
        )
        self.disk_root: Path | None = getattr(ctx.store, "root", None)
        self.jobs: dict[str, int] | None = None
        self.slots_in_use: int | None = None
        self.disk: tuple[int, int] | None = None
        self.read_at = -CACHE_SECONDS
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read every source again unless the last read is fresh enough."""
        async with self._lock:
            if time.monotonic() - self.read_at < CACHE_SECONDS:
                return
            self.jobs, self.slots_in_use, self.disk = await asyncio.gather(
                self._bounded("jobs", self._jobs()),
                self._bounded("slots", self._slots()),
                self._bounded("disk", self._disk()),
            )
            self.read_at = time.monotonic()

    async def _bounded(self, source: str, read: Any) -> Any:
        try:
            return await asyncio.wait_for(read, SOURCE_TIMEOUT)
        except Exception as exc:  # left out of this scrape; the next one tries again
            log.warning("metrics_source_failed", source=source, error=type(exc).__name__)
            return None

    async def _jobs(self) -> dict[str, int]:
        async with transaction(self.ctx.engine) as conn:
            counts = await jobs.count_jobs_by_state(conn)
        return {state.value: counts.get(state.value, 0) for state in JobState}

    async def _slots(self) -> int:
        return len(await self.slots.holders())

    async def _disk(self) -> tuple[int, int] | None:
        if self.disk_root is None:
            return None  # OSS: no disk of ours to watch
        usage = await asyncio.to_thread(shutil.disk_usage, self.disk_root)
        return usage.free, usage.total

    def collect(self) -> Iterator[Metric]:
        """The cached figures as metric families (a source that failed is left out)."""
        if self.jobs is not None:
            depth = GaugeMetricFamily(
                "vasset_transcode_jobs", "Transcode jobs by state (from MySQL)", labels=["state"]
            )
            for state, count in self.jobs.items():
                depth.add_metric([state], count)
            yield depth
        if self.slots_in_use is not None:
            yield GaugeMetricFamily(
                "vasset_ffmpeg_slots_in_use",
                "FFmpeg slots held across all workers (from Redis)",
                value=self.slots_in_use,
            )
        limit = GaugeMetricFamily(
            "vasset_ffmpeg_slots_limit", "FFmpeg slot caps by scope", labels=["scope"]
        )
        limit.add_metric(["global"], self.ctx.settings.ffmpeg_global_limit)
        if self.node_limit is not None:
            limit.add_metric(["node"], self.node_limit)
        yield limit
        if self.disk is not None:
            free, total = self.disk
            yield GaugeMetricFamily(
                "vasset_storage_free_bytes", "Free bytes on the local storage disk", value=free
            )
            yield GaugeMetricFamily(
                "vasset_storage_size_bytes", "Size of the local storage disk", value=total
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LiveProcesses:
    """Process figures of the live server processes of a multiprocess folder, combined.

    A process metric per process would need a pid label; instead CPU, memory and descriptors
    are summed over the instance's live processes, max_fds is the largest and the start time
    the oldest, and vasset_api_processes counts them.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def pids(self) -> list[int]:
        """Live pids that wrote metric files; marks dead ones (their live gauges go away)."""
        names = os.listdir(self.folder)
        found = {int(m[1]) for name in names if (m := _PID_FILE.fullmatch(name))}
        live = [pid for pid in sorted(found) if _alive(pid)]
        # A killed process never ran its own mark_process_dead: its in-progress gauge stays.
        with_live_gauges = {int(m[1]) for name in names if (m := _LIVE_FILE.fullmatch(name))}
        for pid in with_live_gauges - set(live):
            mark_process_dead(pid, self.folder)
        return live

    def collect(self) -> Iterator[Metric]:
        """The combined process families, then the process count."""
        pids = self.pids()
        merged: dict[str, Metric] = {}
        for pid in pids:
            for family in ProcessCollector(
                pid=functools.partial(int, pid), registry=None
            ).collect():
                value = family.samples[0].value
                seen = merged.get(family.name)
                if seen is None:
                    merged[family.name] = family
                    continue
                old = seen.samples[0]
                if family.name.endswith("start_time_seconds"):
                    value = min(old.value, value)
                elif family.name.endswith("max_fds"):
                    value = max(old.value, value)
                else:
                    value += old.value
                seen.samples[0] = old._replace(value=value)
        yield from merged.values()
        yield GaugeMetricFamily(
            "vasset_api_processes", "Live server processes of this instance", value=len(pids)
        )


class _Sources:
    """Several collectors as one registry-like object for generate_latest."""

    def __init__(self, sources: Iterable[Any]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


async def render(m: Metrics, state: SharedState) -> bytes:
    """The Prometheus text of one scrape: this process's (or every server process's) metrics."""
    await state.refresh()
    if m.multiprocess_dir is None:
        assert m.registry is not None
        return generate_latest(_Sources([m.registry, state]))
    folder = m.multiprocess_dir

    def gather() -> bytes:
        sources = [LiveProcesses(folder), MultiProcessCollector(None, folder), state]
        return generate_latest(_Sources(sources))

    # Reads one file per process: off the event loop.
    return await asyncio.to_thread(gather)
