"""A worker's background duties: the reaper, the temp-dir sweep and the janitor pass."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Container
from pathlib import Path

import structlog

from vasset import redis_keys
from vasset.context import Context
from vasset.db import run_transaction, transaction
from vasset.locks import LeaseLock
from vasset.loop_errors import loop_error
from vasset.metrics.registry import metrics
from vasset.transcode import queue

log = structlog.get_logger(__name__)

# pipeline.JobRun's temp dir of one attempt: job-{job id}-{lease token}.
_JOB_DIR = re.compile(r"job-(\d+)-(\d+)")


async def reaper(ctx: Context, running: Container[int]) -> None:
    """Return expired leases to the queue (one reaper at a time, under a Redis lock)."""
    s = ctx.settings
    lock = LeaseLock(
        ctx.redis, redis_keys.lock(s.redis_prefix, "scheduler"), int(s.job_lease * 1000)
    )

    async def reap(conn) -> tuple[list[tuple[int, str]], int]:
        return (
            await queue.reap(conn, s.job_backoff_base),
            await queue.video_state_fix(conn, s.job_max_attempts),
        )

    while True:
        await asyncio.sleep(min(5.0, s.job_lease / 3))
        try:
            await sweep_temp(ctx, running)
            if not await lock.acquire() and not await lock.renew():
                continue
            outcomes, fixed = await run_transaction(ctx.engine, reap)
            for job_id, outcome in outcomes:
                log.info("job_reaped", job=job_id, outcome=outcome)
            # Wake one idle worker for the requeued work (best effort: workers also poll).
            if fixed:
                log.info("videos_requeued", count=fixed)
                await ctx.wakeup.wake()
            if outcomes:
                await ctx.wakeup.wake()
        except Exception as exc:
            loop_error("reaper_skipped", exc)


async def sweep_temp(ctx: Context, running: Container[int]) -> None:
    """Remove job-{id}-{token} temp dirs whose attempt is over, e.g. a killed worker's.

    An attempt removes its own dir when it ends; a worker that died cannot, and the
    janitor only removes day-old files. Temp dirs are per host, so every worker sweeps.
    running holds the ids of this worker's jobs.
    """
    root = Path(ctx.settings.temp_dir)
    try:
        found = {
            entry: (int(m[1]), int(m[2]))
            for entry in root.iterdir()
            if (m := _JOB_DIR.fullmatch(entry.name)) and entry.is_dir()
        }
    except OSError:
        return
    if not found:
        return
    try:
        async with transaction(ctx.engine) as conn:
            live = await queue.live_attempts(conn, sorted({k[0] for k in found.values()}))
    except Exception as exc:
        loop_error("temp_sweep_skipped", exc)
        return
    for path, attempt in found.items():
        # A superseded job of ours keeps its dir until it notices the cancel and ends.
        if attempt not in live and attempt[0] not in running:
            await asyncio.to_thread(shutil.rmtree, path, True)
            log.info("stale_temp_removed", path=str(path))


async def janitor(ctx: Context) -> None:
    """Run a janitor pass every janitor_interval seconds (run_guarded lets one worker at a time)."""
    from vasset.janitor import run_guarded

    while True:
        await asyncio.sleep(ctx.settings.janitor_interval)
        try:
            report = await run_guarded(ctx)
        except Exception as exc:
            loop_error("janitor_skipped", exc)
        else:
            metrics().janitor_pass(report or {})
