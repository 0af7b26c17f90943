"""The transcode worker: claims jobs under a global FFmpeg cap, heartbeats, reaps, cleans.

Any number of `vasset worker` processes on any number of hosts share one MySQL queue and one
Redis. A worker takes an FFmpeg slot before it claims a job, so a claimed job never waits
for a slot; while a job runs, one heartbeat renews both the job lease (fencing token) and the
slot lease, and a lost lease or a lost slot stops FFmpeg.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import socket
import time

import structlog
from redis.exceptions import ReadOnlyError, RedisError

from vasset.context import Context, build_context, close_context
from vasset.db import run_transaction
from vasset.events.delivery import Deliverer
from vasset.loop_errors import loop_error
from vasset.metrics.registry import metrics
from vasset.redis_client import REDIS_DOWN
from vasset.settings import Settings
from vasset.transcode import failures, housekeeping, pipeline, queue
from vasset.transcode.queue import Job
from vasset.transcode.slots import SlotSemaphore
from vasset.transcode.wakeup import notify_key
from vasset.upload import replace

log = structlog.get_logger(__name__)

REDIS_FAILED = (RedisError, *REDIS_DOWN)
MAX_BACKOFF = 5.0


def node_limit(settings: Settings) -> int:
    """FFmpeg processes this host may run: the override, else from cores and free memory."""
    if settings.ffmpeg_node_limit > 0:
        return settings.ffmpeg_node_limit
    cores = os.cpu_count() or 1
    try:
        with open("/proc/meminfo") as fh:
            meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        free = meminfo.get("MemAvailable", 0)
    except OSError:
        free = 0
    by_memory = free // max(settings.ffmpeg_memory_limit, 1) if free else cores
    return max(1, min(cores, by_memory))


async def notify(ctx: Context) -> None:
    """Wake one idle worker (best effort: workers also poll)."""
    await ctx.wakeup.wake()


class Worker:
    """One worker process: a claim loop, running jobs, the reaper and the janitor."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.node = socket.gethostname()
        self.id = f"{self.node}:{os.getpid()}:{secrets.token_hex(3)}"
        self.capacity = node_limit(s)
        self.slots = SlotSemaphore(
            ctx.redis,
            s.redis_prefix,
            self.node,
            s.ffmpeg_global_limit,
            self.capacity,
            lease=max(3 * s.job_heartbeat, 6.0),
        )
        self.stopping = asyncio.Event()
        self.running: dict[int, asyncio.Task] = {}
        self.cancels: dict[int, asyncio.Event] = {}
        # Webhooks on their own tasks and concurrency: never behind FFmpeg slots, nor in its way.
        self.deliverer = Deliverer(ctx, self.id, self.stopping)

    # main loop
    async def run(self) -> None:
        """Claim and run jobs until asked to stop, then drain."""
        log.info(
            "worker_started",
            worker=self.id,
            node_limit=self.capacity,
            global_limit=self.ctx.settings.ffmpeg_global_limit,
        )
        await housekeeping.sweep_temp(self.ctx, self.running)
        background = [
            asyncio.create_task(housekeeping.reaper(self.ctx, self.running)),
            asyncio.create_task(housekeeping.janitor(self.ctx)),
        ]
        deliveries = asyncio.create_task(self.deliverer.run())
        failed_claims = 0  # in a row (not "failures": that is the module)
        try:
            while not self.stopping.is_set():
                try:
                    started = len(self.running) < self.capacity and await self._try_start()
                except Exception as exc:
                    failed_claims += 1
                    loop_error("claim_failed", exc, failures=failed_claims)
                    await self._pause(self._backoff(failed_claims))
                    continue
                failed_claims = 0
                if not started:
                    await self._idle()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(self._drain(), self._stop_deliveries(deliveries))
            log.info("worker_stopped", worker=self.id)

    async def _stop_deliveries(self, claimer: asyncio.Task) -> None:
        """Stop claiming deliveries; attempts in flight end (or are given back), then settle."""
        self.stopping.set()
        await asyncio.gather(claimer, return_exceptions=True)
        s = self.ctx.settings
        await self.deliverer.drain(min(s.worker_shutdown_grace, s.webhook_timeout + 1))

    def _backoff(self, failures: int) -> float:
        """Seconds to wait after the claim loop failed this many times in a row."""
        return min(MAX_BACKOFF, self.ctx.settings.worker_poll_interval * 2 ** min(failures, 8))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on shutdown."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _idle(self) -> None:
        """Wait for a notify, a free local slot, or the poll interval."""
        s = self.ctx.settings
        try:
            await asyncio.wait_for(self._wait_notify(), timeout=s.worker_poll_interval)
        except TimeoutError:
            pass
        except REDIS_FAILED:
            # A refused connection fails at once: without this sleep the claim loop spins.
            await self._pause(s.worker_poll_interval)

    async def _wait_notify(self) -> None:
        if self.stopping.is_set():
            return
        # A dedicated short BLPOP so a wake-up arrives within milliseconds of an enqueue.
        await self.ctx.redis.blpop([notify_key(self.ctx.settings)], timeout=1)

    async def _try_start(self) -> bool:
        """Take a slot, then a job; True if a job started."""
        holder = f"{self.id}:{secrets.token_hex(4)}"
        try:
            got = await self.slots.acquire(holder)
        except ReadOnlyError:
            raise  # reachable but refusing writes (a demoted master): the loop logs claim_failed
        except REDIS_DOWN:
            return False
        if got != 1:
            return False

        try:
            job = await run_transaction(
                self.ctx.engine,
                functools.partial(queue.claim, worker=self.id, lease=self.ctx.settings.job_lease),
            )
        except BaseException:
            await self._release_slot(holder)
            raise
        if job is None:
            await self._release_slot(holder)
            return False
        cancel = asyncio.Event()
        self.cancels[job.id] = cancel
        self.running[job.id] = asyncio.create_task(self._run_job(job, holder, cancel))
        return True

    async def _release_slot(self, holder: str) -> None:
        try:
            await self.slots.release(holder)
        except REDIS_FAILED:
            pass  # the slot's lease runs out by itself

    # one job
    async def _run_job(self, job: Job, holder: str, cancel: asyncio.Event) -> None:
        log.info(
            "job_started",
            job=job.id,
            vid=job.video_id,
            kind=job.kind,
            attempt=job.attempts,
            token=job.lease_token,
            waited=round(time.time() - job.create_time, 3),
        )
        run = pipeline.JobRun(self.ctx, job, cancel)
        beat = asyncio.create_task(self._heartbeat(job, holder, cancel, run))
        started, outcome = time.monotonic(), "unrecorded"  # the job-seconds metric's label

        async def on_ffmpeg(coro):
            log.info("ffmpeg_slot_used", job=job.id, holder=holder)
            return await coro

        try:
            await pipeline.execute(run, on_ffmpeg)
            log.info("job_succeeded", job=job.id, vid=job.video_id)
            outcome = "succeeded"
        except (pipeline.LeaseLost, asyncio.CancelledError):
            log.warning("job_lease_lost", job=job.id, vid=job.video_id)
            outcome = "lease_lost"
            await self._after_loss(job, run)
        except BaseException as exc:
            message, permanent = failures.classify(exc)
            log.warning(
                "job_failed",
                job=job.id,
                vid=job.video_id,
                error=message,
                permanent=permanent,
                attempt=job.attempts,
            )
            base = self.ctx.settings.job_backoff_base
            try:
                outcome = await run_transaction(
                    self.ctx.engine,
                    lambda conn: queue.retry_or_fail(conn, job, message, base, permanent),
                )
                log.info("job_outcome", job=job.id, outcome=outcome)
                if outcome == "failed":
                    await replace.discard(self.ctx, job.video_id)  # a failed new source's bytes
            except Exception as exc:  # the reaper settles the job once its lease expires
                loop_error("job_outcome_unrecorded", exc, job=job.id)
        finally:
            metrics().transcode_job_seconds.labels(outcome).observe(time.monotonic() - started)
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            try:
                await pipeline.discard_outputs(self.ctx, run, job)
            except Exception as exc:  # the janitor removes what is left
                loop_error("outputs_not_discarded", exc, job=job.id)
            await self._release_slot(holder)
            self._forget(job, cancel)

    def _forget(self, job: Job, cancel: asyncio.Event) -> None:
        """Drop this attempt from the running set (not a later attempt of the same job)."""
        if self.cancels.get(job.id) is cancel:
            self.running.pop(job.id, None)
            self.cancels.pop(job.id, None)

    async def _after_loss(self, job: Job, run: pipeline.JobRun) -> None:
        """A job stopped because its lease went away; on shutdown or a lost slot, give it back."""
        # A lost FFmpeg slot (another holder got it after a Redis failover) is not the job's
        # fault: it runs again at once, the attempt not counted, rather than after the reaper.
        if self.stopping.is_set() or run.slot_lost:
            try:
                await run_transaction(self.ctx.engine, lambda conn: queue.give_back(conn, job))
            except Exception as exc:  # the reaper returns it once its lease expires
                loop_error("job_not_given_back", exc, job=job.id)

    async def _heartbeat(
        self, job: Job, holder: str, cancel: asyncio.Event, run: pipeline.JobRun
    ) -> None:
        """Renew the job lease and the slot; stop FFmpeg when either is lost."""
        s = self.ctx.settings
        while not cancel.is_set():
            await asyncio.sleep(s.job_heartbeat)
            idle = time.monotonic() - run.active_at
            if idle > s.job_stall_timeout:
                await self._abandon(job, cancel, idle)
                return
            try:
                held = await run_transaction(
                    self.ctx.engine,
                    lambda conn: queue.heartbeat(conn, job, s.job_lease, run.progress),
                )
            except Exception as exc:
                # MySQL unreachable: keep going; the fence is checked at publish.
                loop_error("heartbeat_failed", exc, job=job.id)
                held = True
            if not held:
                log.warning("job_fence_lost", job=job.id, token=job.lease_token)
                cancel.set()
                return
            try:
                if not await self.slots.renew(holder):
                    log.warning("ffmpeg_slot_lost", job=job.id, holder=holder)
                    run.slot_lost = True
                    cancel.set()
                    return
            except REDIS_FAILED:
                pass  # nobody can take a slot while Redis is down; the cap holds

    async def _abandon(self, job: Job, cancel: asyncio.Event, idle: float) -> None:
        """Stop an attempt that stopped moving; if it does not end, let its leases lapse.

        Renewing the leases of an attempt stuck on some await would keep its video transcoding
        forever. Once they lapse the reaper hands the job on (the attempt counted) and the fence
        keeps the stuck one from publishing, should it ever wake.
        """
        log.error(
            "job_hung", job=job.id, vid=job.video_id, token=job.lease_token, idle=round(idle, 1)
        )
        cancel.set()
        # A healthy attempt ends at the cancel, and its ending cancels this heartbeat.
        await asyncio.sleep(max(2 * self.ctx.settings.job_heartbeat, 5.0))
        log.error("job_abandoned", job=job.id, vid=job.video_id, token=job.lease_token)
        self._forget(job, cancel)

    async def _drain(self) -> None:
        """Let running jobs finish up to the grace deadline, then stop them and give them back."""
        if not self.running:
            return
        grace = self.ctx.settings.worker_shutdown_grace
        log.info("worker_draining", jobs=list(self.running), grace=grace)
        _, pending = await asyncio.wait(list(self.running.values()), timeout=grace)
        for job_id in list(self.running):
            self.cancels[job_id].set()
        if pending:
            await asyncio.wait(pending, timeout=30)


async def run_worker(
    settings: Settings, metrics_port: int | None = None, metrics_host: str = "127.0.0.1"
) -> int:
    """`vasset worker`: run until SIGTERM/SIGINT, then shut down gracefully."""
    os.makedirs(settings.temp_dir, exist_ok=True)
    # One process, its own exporter: never the API's multiprocess files (an inherited env var).
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics()
    ctx = build_context(settings)
    worker = Worker(ctx)
    exporter = None
    if metrics_port is not None:
        from vasset.metrics.exporter import start_exporter

        exporter = await start_exporter(ctx, metrics_host, metrics_port, worker.capacity)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stopping.set)
    try:
        await worker.run()
    finally:
        if exporter is not None:
            await exporter.cleanup()
        await close_context(ctx)
    return 0
