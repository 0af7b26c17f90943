"""The fenced final publish of a transcode attempt, and the clean-up of one that never published.

Outputs go under the attempt's token prefix first; the database rows switch in transactions
that hold the job's token (queue.holds), so a stale attempt can never point a video at its bytes.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.context import Context
from vasset.db import run_transaction, transaction
from vasset.storage import keys
from vasset.transcode import commands, queue, sidecars
from vasset.transcode.jobrun import JobRun, LeaseLost
from vasset.transcode.jobstate import JobState
from vasset.transcode.progressive import insert_rendition
from vasset.transcode.queue import Job
from vasset.upload import replace
from vasset.videos import repository as videos
from vasset.videos import snapshot_repository
from vasset.videos.state import LADDER, Ladder, VideoStatus, ladder_of

log = structlog.get_logger(__name__)


async def upload_tree(run: JobRun, local_dir: Path, prefix: str) -> None:
    """Store every file under local_dir at prefix + its relative path."""
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            run.check()
            key = prefix + path.relative_to(local_dir).as_posix()
            await run.ctx.store.put_file(key, path)
            run.uploaded.append(key)


async def publish_outputs(run: JobRun, cmd: commands.TranscodeCommand, master: Path | None) -> None:
    """Store outputs under the token prefix, then swap the database rows while the token holds.

    Progressively published HLS (see progressive) is closed first, then the MP4s join it.
    Otherwise a first transcode publishes its lowest rendition on its own so players can start
    early, and a retranscode (the video already has renditions) swaps the whole set in one
    transaction.
    """
    s = run.ctx.settings
    live = run.publisher
    if live is not None:
        # HLS first: players already on it get the closed VOD playlists as soon as possible.
        await live.finish()
    mp4_rows = []
    for output in cmd.outputs:
        run.check()
        key = f"{run.prefix}{output.name}.mp4"
        await run.ctx.store.put_file(key, Path(output.mp4_path), "video/mp4")
        run.uploaded.append(key)
        size = Path(output.mp4_path).stat().st_size
        mp4_rows.append((output, key, size))
        run.check()
    extras = await sidecars.store(run, cmd, master, live is not None)
    hls_rows = []
    master_key = None
    if master is not None:
        if live is None:
            await upload_tree(run, master.parent, run.prefix + "hls/")
        master_key = f"{run.prefix}hls/{master.name}"
        for output in cmd.outputs:
            if output.hls_playlist:
                rel = Path(output.hls_playlist).relative_to(master.parent).as_posix()
                hls_rows.append((output, f"{run.prefix}hls/{rel}"))
    async with transaction(run.ctx.engine) as conn:
        old = await videos.children(conn, run.job.video_id)
    # Rows this attempt committed early stay; only the rest of the set is inserted.
    early = live is not None and live.published
    if early:
        assert live is not None
        pending = {o.name for o in live.rows_left()}
        hls_rows = [(o, k) for o, k in hls_rows if o.name in pending]
        old = [r for r in old if keys.output_prefix_of(r.storage_uri or "") != run.prefix]
    first_publish = not old and not early
    batches = [mp4_rows[:1], mp4_rows[1:]] if first_publish else [mp4_rows]

    async def publish(conn: AsyncConnection, number: int, batch: list) -> None:
        # The video row first, then the job's (videos.lock_video): the API's lock order.
        source = await videos.get_video(conn, run.job.video_id, for_update=True)
        if source is None or not await queue.holds(conn, run.job, lock=True):
            raise LeaseLost()
        details = json.loads(source.media_info or "{}")
        if number == 0 and not early:
            # Hide the current renditions in the same transaction as the new ones.
            await videos.retire_renditions(conn, run.job.video_id)
        for output, key, size in batch:
            await insert_rendition(conn, source, output, key, size, "mp4")
        if number == len(batches) - 1:
            LADDER.check(ladder_of(details, early or bool(old)), Ladder.COMPLETE)
            for output, key in hls_rows:
                await insert_rendition(conn, source, output, key, 0, "hls")
            await _replace_snapshots(conn, run)
            await replace.adopt(conn, run, source)
            await sidecars.record(conn, source, details, extras)
            details["hls_master"] = master_key
            details["output_prefix"] = run.prefix
            details["ladder"] = Ladder.COMPLETE.value
            await queue.finish(conn, run.job, JobState.SUCCEEDED)
            await videos.move_video(
                conn,
                source.id,
                VideoStatus.TRANSCODING,
                VideoStatus.TRANSCODE_SUCCEEDED,
                media_info=json.dumps(details),
                progress=100,
                error=None,
            )
            await videos.move_video(
                conn, source.id, VideoStatus.TRANSCODE_SUCCEEDED, VideoStatus.PLAYABLE
            )

    for number, batch in enumerate(batches):
        # A deadlock runs the batch again instead of throwing away a finished transcode.
        await run_transaction(
            run.ctx.engine, functools.partial(publish, number=number, batch=batch)
        )
    run.published = True  # type: ignore[attr-defined]
    # Old outputs are unreachable now (an earlier attempt's partial set was hidden by this
    # attempt's first publish and kept for players already on it until now); remove their bytes.
    stale = {keys.output_prefix_of(r.storage_uri) for r in old if r.storage_uri}
    stale |= live.replaced if live is not None else set()
    for prefix in stale:
        if prefix and prefix != run.prefix:
            await run.ctx.store.delete_prefix(prefix)
    await replace.drop_old_source(run.ctx, run)
    log.info(
        "transcode_published",
        vid=run.job.video_id,
        renditions=[o.name for o in cmd.outputs],
        hls=master_key is not None,
        progressive=early,
        replaced=len(stale),
        ladder=s.ladder,
    )


async def _replace_snapshots(conn, run: JobRun) -> None:
    rows = getattr(run, "snapshots", None)
    if rows is None:
        return
    width, height = run.snapshot_size  # type: ignore[attr-defined]
    await snapshot_repository.replace_snapshots(conn, run.job.video_id, rows, width, height)


async def discard_outputs(ctx: Context, run: JobRun, job: Job) -> None:
    """Remove an unpublished attempt's objects (best effort; the janitor catches the rest).

    A partial set published early stays while the video points at it (a retry replaces it;
    a final failure has just retired it, so then it goes).
    """
    if getattr(run, "published", False):
        return
    try:
        if run.publisher is not None and run.publisher.published:
            async with transaction(ctx.engine) as conn:
                live = await videos.output_keys(conn, job.video_id)
            if any(keys.output_prefix_of(k) == run.prefix for k in live):
                return
        await ctx.store.delete_prefix(run.prefix)
    except errors.VassetError as exc:
        log.warning("outputs_left_for_janitor", job=job.id, prefix=run.prefix, error=exc.code)
