"""The load run: concurrent uploads and read calls over all APIs while faults are injected."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadkit import content
from bench.loadkit.client import CallStats, SpreadingClient, Unreachable, UploadRecord, upload
from bench.loadkit.procs import Deployment
from bench.loadkit.sampler import ProcSampler


@dataclass
class LoadConfig:
    """What to run; fractions are of `seconds`, counted from the start of the load."""

    seconds: float = 60.0
    uploads: int = 100  # concurrent uploaders, each starting a new upload when one ends
    min_size: int = 100 * 1000
    max_size: int = 200 * content.MiB
    rps: float = 20.0  # status and play-URL calls per second
    clip_every: int = 10  # every Nth upload is a real clip
    max_auto: int = 20  # clips uploaded with auto=1, at most
    clip_size: str = "640x360"
    clip_seconds: int = 6
    api_kill_at: float = 0.25
    api_down: float = 3.0
    worker_kill_at: float = 0.45  # then the first moment a worker runs FFmpeg
    redis_restart_at: float = 0.65
    redis_down: float = 1.0
    drain: float = 180.0  # bounded wait for uploads in flight when the time is up
    transcode_wait: float = 240.0  # bounded wait for auto=1 clips to become playable
    seed: int = 12


@dataclass
class Fault:
    """One injected fault: what, when (seconds into the load) and on what."""

    name: str
    at: float
    target: str


@dataclass
class LoadRun:
    """Everything the run saw, for verification and the report."""

    records: list[UploadRecord] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)
    faults: list[Fault] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # uploads that gave up or crashed
    load_seconds: float = 0.0  # start of the load until the last upload settled
    undrained: int = 0  # uploads still running when the drain wait ran out
    playable: dict[int, str] = field(default_factory=dict)  # auto=1 vid -> last status


class Scenario:
    """Runs one LoadConfig against a started Deployment, sampling /proc throughout."""

    def __init__(self, deployment: Deployment, config: LoadConfig, clip_dir: Path) -> None:
        self.dep = deployment
        self.cfg = config
        self.clip_dir = clip_dir
        self.run = LoadRun()
        self.rng = random.Random(config.seed)
        self.counter = itertools.count()
        self.auto_started = 0
        self.started = 0.0
        self.base_clip = Path()
        self.sampler = ProcSampler(
            deployment.labelled_pids, lambda: [w.pid for w in deployment.live_workers()]
        )

    def elapsed(self) -> float:
        """Seconds since the load began."""
        return time.monotonic() - self.started

    async def next_source(self) -> tuple[content.Source, bool]:
        """The next upload's bytes and whether it asks for a transcode."""
        index = next(self.counter)
        if self.cfg.clip_every and index % self.cfg.clip_every == 0:
            out = self.dep.root / "clips"
            src = await asyncio.to_thread(content.unique_clip, self.base_clip, out)
            await asyncio.to_thread(src.digest)
            auto = self.auto_started < self.cfg.max_auto
            self.auto_started += auto
            return src, auto
        return content.synthetic(self.rng, self.cfg.min_size, self.cfg.max_size), False

    async def uploader(self, client: SpreadingClient) -> None:
        """Uploads back to back until the time is up (the last one runs to its end)."""
        while self.elapsed() < self.cfg.seconds:
            src, auto = await self.next_source()
            record = UploadRecord(src, auto)
            self.run.records.append(record)
            try:
                await upload(client, record)
            except Unreachable as exc:
                self.run.unreachable.append(f"{record.upid or record.source.name}: {exc}")

    async def reader(self, client: SpreadingClient) -> None:
        """Status and play-URL calls at a steady rate on videos the uploads created."""
        interval, pending = 1.0 / self.cfg.rps, set()
        for tick in itertools.count():
            at = tick * interval
            if at >= self.cfg.seconds:
                break
            await asyncio.sleep(max(0.0, at - self.elapsed()))
            vids = [r.vid for r in self.run.records if r.vid]
            if not vids:
                continue
            autos = [r.vid for r in self.run.records if r.vid and r.auto and r.completed]
            if tick % 2 and autos:
                call = client.call(
                    "playurl", "GET", "/video/playurl", {"vid": self.rng.choice(autos)}
                )
            else:
                call = client.call("status", "GET", "/video/status", {"vid": self.rng.choice(vids)})
            task = asyncio.ensure_future(call)
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, return_exceptions=True)

    async def faults(self) -> None:
        """Kill an API (and restart it), kill a worker running FFmpeg (and replace it) and
        restart Redis, each at its own fraction of the run."""

        async def at(fraction: float, action) -> None:
            await asyncio.sleep(max(0.0, fraction * self.cfg.seconds - self.elapsed()))
            await action()

        await asyncio.gather(
            at(self.cfg.api_kill_at, self.kill_api),
            at(self.cfg.worker_kill_at, self.kill_busy_worker),
            at(self.cfg.redis_restart_at, self.restart_redis),
        )

    async def kill_api(self) -> None:
        """SIGKILL API 0; its clients fail over; it comes back on its port api_down later."""
        self.dep.kill_api(0)
        self.run.faults.append(Fault("api SIGKILL", self.elapsed(), "api0"))
        await asyncio.sleep(self.cfg.api_down)
        await asyncio.to_thread(self.dep.restart_api, 0)
        self.run.faults.append(Fault("api restarted", self.elapsed(), "api0"))

    async def kill_busy_worker(self) -> None:
        """SIGKILL the first worker seen running FFmpeg, then start a replacement."""
        deadline = self.cfg.seconds + 60.0
        while self.elapsed() < deadline:
            busy = self.sampler.busy_workers
            victim = next((w for w in self.dep.live_workers() if w.pid in busy), None)
            if victim is not None:
                self.dep.kill_worker(victim)
                self.run.faults.append(
                    Fault("worker SIGKILL during FFmpeg", self.elapsed(), victim.name)
                )
                await asyncio.to_thread(self.dep.start_worker)
                return
            await asyncio.sleep(0.05)

    async def restart_redis(self) -> None:
        """Redis dies (all keys lost) and comes back empty redis_down seconds later."""
        await asyncio.to_thread(self.dep.restart_redis, self.cfg.redis_down)
        self.run.faults.append(Fault("redis restarted", self.elapsed(), "redis"))

    async def wait_playable(self, client: SpreadingClient) -> None:
        """Poll every auto=1 clip's status until playable or failed (bounded)."""
        waiting = {r.vid for r in self.run.records if r.auto and r.completed}
        deadline = time.monotonic() + self.cfg.transcode_wait
        while waiting and time.monotonic() < deadline:
            for vid in sorted(waiting):
                answer = await client.call("wait", "GET", "/video/status", {"vid": vid})
                status = str(answer.body.get("status", answer.status))
                self.run.playable[vid] = status
                if status in ("playable", "transcode_failed"):
                    waiting.discard(vid)
            await asyncio.sleep(0.5)

    async def load(self) -> LoadRun:
        """The whole run: load with faults, drain, then the transcode wait."""
        app = self.dep.app
        async with SpreadingClient(
            self.dep.api_urls, app["app_key"], app["app_secret"], self.run.stats
        ) as client:
            self.started = time.monotonic()
            uploaders = [
                asyncio.ensure_future(self.uploader(client)) for _ in range(self.cfg.uploads)
            ]
            side = [
                asyncio.ensure_future(self.reader(client)),
                asyncio.ensure_future(self.faults()),
            ]
            await asyncio.sleep(self.cfg.seconds)
            _, late = await asyncio.wait(uploaders, timeout=self.cfg.drain)
            self.run.undrained = len(late)
            for task in late:
                task.cancel()
            self.run.load_seconds = self.elapsed()
            await asyncio.gather(*late, return_exceptions=True)
            await asyncio.gather(*side, return_exceptions=True)
            for task in uploaders:
                if not task.cancelled() and task.exception() is not None:
                    self.run.unreachable.append(repr(task.exception()))
            await self.wait_playable(client)
        return self.run

    def execute(self) -> LoadRun:
        """Run the load in its own event loop with the /proc sampler going."""
        # Built once, before any thread could race to build it.
        if self.cfg.clip_every:
            self.base_clip = content.base_clip(
                self.clip_dir, self.cfg.clip_size, self.cfg.clip_seconds
            )
        self.sampler.start()
        try:
            return asyncio.run(self.load())
        finally:
            self.sampler.stop()
