"""The janitor: expires uploads, aborts stray multipart uploads, removes stale temp files, the
bytes of deleted videos once nothing references them, and leftovers of uploads that never
completed. Idempotent; one at a time."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import structlog

from vasset import redis_keys
from vasset.assets.service import remove_orphans as asset_orphans
from vasset.captions.service import remove_orphans
from vasset.context import Context, build_context, close_context
from vasset.db import transaction
from vasset.events import delivery_repository as deliveries
from vasset.events import repository as events
from vasset.locks import LeaseLock
from vasset.settings import Settings
from vasset.templates import repository as templates
from vasset.upload import replace
from vasset.upload import repository as uploads
from vasset.videos import repository as videos
from vasset.videos.retention import delete_expired

log = structlog.get_logger(__name__)


async def sweep(ctx: Context) -> dict:
    """One janitor pass (callers hold the janitor lock)."""
    report = {
        "expired_uploads": await ctx.uploads.expire(),
        "aborted_multipart": await _abort_stray_multipart(ctx),
        "temp_removed": _remove_old_temp(ctx.settings),
        # Before objects_removed: source bytes an expired video leaves go in the same pass.
        "expired_videos": await delete_expired(ctx.engine, ctx.videos),
        "objects_removed": await _remove_unreferenced(ctx),
        "captions_removed": await remove_orphans(ctx.engine, ctx.store),
        "assets_removed": await asset_orphans(ctx.engine, ctx.store),
        "posted_removed": await _remove_unregistered_posts(ctx),
        "tickets_removed": await ctx.tickets.drop_expired(),
        "options_removed": await _drop_stale_options(ctx),
        "replacements_removed": await replace.sweep_abandoned(ctx),
        **await _drop_old_events(ctx),
    }
    log.info("janitor_pass", **report)
    return report


async def _drop_old_events(ctx: Context) -> dict[str, int]:
    """Remove settled deliveries, then events, older than event_retention_days."""
    cutoff = time.time() - ctx.settings.event_retention_days * 86400
    removed = {"deliveries_removed": 0, "events_removed": 0}
    # In batches, each its own short transaction: a big backlog never holds locks for long.
    for key, drop in (
        ("deliveries_removed", lambda c: deliveries.drop_settled_before(c, int(cutoff))),
        ("events_removed", lambda c: events.drop_events_before(c, int(cutoff * 1000))),
    ):
        while True:
            async with transaction(ctx.engine) as conn:
                count = await drop(conn)
            removed[key] += count
            if count < 5000:
                break
    return removed


async def _drop_stale_options(ctx: Context) -> int:
    """Template options recorded by uploads that never completed (an hour old at least)."""
    async with transaction(ctx.engine) as conn:
        return await templates.drop_stale_video_options(conn, older_than=3600)


async def _abort_stray_multipart(ctx: Context) -> int:
    """Abort multipart uploads that no live upload owns and that are older than the TTL."""
    cutoff = time.time() - ctx.settings.upload_ttl
    stray = 0
    for key, upload_id, started in await ctx.store.list_multipart_uploads("sources/"):
        if started > cutoff:
            continue
        async with transaction(ctx.engine) as conn:
            owned = await uploads.multipart_in_use(conn, upload_id)
        if not owned:
            await ctx.store.abort_multipart(key, upload_id)
            log.info("multipart_aborted", key=key, upload_id=upload_id)
            stray += 1
    return stray


def _remove_old_temp(settings: Settings) -> int:
    """Remove files and folders in the temp dir older than temp_max_age."""
    root = Path(settings.temp_dir)
    if not root.is_dir():
        return 0
    cutoff = time.time() - settings.temp_max_age
    removed = 0
    for entry in root.iterdir():
        try:
            if entry.stat().st_mtime > cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                os.unlink(entry)
            removed += 1
            log.info("temp_removed", path=str(entry))
        except OSError:
            continue
    return removed


async def _remove_unreferenced(ctx: Context) -> int:
    """Delete source bytes of deleted videos once no live video points at them."""
    async with transaction(ctx.engine) as conn:
        keys = await videos.unreferenced_sources(conn)
    for key in keys:
        await ctx.store.delete(key)
        async with transaction(ctx.engine) as conn:
            await videos.forget_source(conn, key)
        log.info("object_removed", key=key)
    return len(keys)


async def _remove_unregistered_posts(ctx: Context) -> int:
    """Delete browser PostObject uploads never registered within the upload TTL.

    Registering copies the object to a sources/ key and deletes the posted one, so anything
    still under direct/ after the TTL was abandoned.
    """
    cutoff = time.time() - ctx.settings.upload_ttl
    removed = 0
    for key in await ctx.store.list_keys("direct/"):
        info = await ctx.store.head(key)
        if info is not None and info.mtime and info.mtime < cutoff:
            await ctx.store.delete(key)
            log.info("posted_object_removed", key=key)
            removed += 1
    return removed


async def run_guarded(ctx: Context) -> dict | None:
    """A pass under the janitor lock; None when another janitor holds it."""
    lock = LeaseLock(
        ctx.redis, redis_keys.lock(ctx.settings.redis_prefix, "janitor"), 10 * 60 * 1000
    )
    if not await lock.acquire():
        return None
    try:
        return await sweep(ctx)
    finally:
        await lock.release()


async def run_once(settings: Settings) -> dict:
    """`vasset janitor`: one guarded pass with its own connections."""
    ctx = build_context(settings)
    try:
        return await run_guarded(ctx) or {"skipped": "another janitor is running"}
    finally:
        await close_context(ctx)
