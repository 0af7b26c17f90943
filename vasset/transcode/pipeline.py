"""One transcode attempt: fetch, probe, ladder with snapshots, verify, publish (fenced).

Everything here runs in a worker under a leased job. FFmpeg argv comes from the pure
``commands`` module; this module only moves files and records results.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.assets import jobs as overlay_inputs
from vasset.context import Context
from vasset.db import run_transaction, transaction
from vasset.storage import keys
from vasset.tracing.spans import ffmpeg_span, job_span
from vasset.transcode import commands, ladder, passthrough, progressive, queue, sidecars, snapshots
from vasset.transcode.codecs import with_variants
from vasset.transcode.jobstate import JobState
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.outputs import verify_outputs
from vasset.transcode.probe import MediaInfo, probe
from vasset.transcode.progressive import Publisher, insert_rendition
from vasset.transcode.queue import Job
from vasset.transcode.sandbox import Progress, run_ffmpeg, timeout_for
from vasset.upload import replace
from vasset.videos import repository as videos
from vasset.videos.state import LADDER, Ladder, VideoStatus, ladder_of

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """The job's fencing token changed: another worker, a cancel, or a retranscode owns it."""


class JobRun:
    """State of one attempt: its temp dir, output prefix, progress and cancel signal."""

    def __init__(self, ctx: Context, job: Job, cancel: asyncio.Event) -> None:
        self.ctx = ctx
        self.job = job
        self.cancel = cancel
        self.progress = 0
        self.workdir = Path(ctx.settings.temp_dir) / f"job-{job.id}-{job.lease_token}"
        self.prefix = keys.output_prefix(job.video_id, job.lease_token, keys.new_nonce())
        self.uploaded: list[str] = []
        # Publishes HLS while FFmpeg writes it (None: the ladder is published whole at the end).
        self.publisher: Publisher | None = None

    def set_progress(self, value: float) -> None:
        """Record 0-100 progress (written to MySQL by the heartbeat)."""
        self.progress = max(self.progress, min(99, int(value)))

    def check(self) -> None:
        """Stop early once the lease is gone."""
        if self.cancel.is_set():
            raise LeaseLost()


async def execute(run: JobRun, on_ffmpeg: Callable) -> None:
    """Run every step of a job; raises MediaError, FfmpegError, LeaseLost or VassetError.

    With tracing on, the attempt is one span in the trace of the request that enqueued the job.
    """
    with job_span(run.ctx.tracing, run.job):
        await _execute(run, on_ffmpeg)


async def _execute(run: JobRun, on_ffmpeg: Callable) -> None:
    run.workdir.mkdir(parents=True, exist_ok=True)
    try:
        await _drop_dead_outputs(run)
        source = await _source_file(run, on_ffmpeg)
        run.check()
        # MediaInfo runs in its own process (capped, memory returned), so probes run side by side.
        memory_limit = run.ctx.settings.ffmpeg_memory_limit or None
        info = await asyncio.to_thread(probe, source, memory_limit=memory_limit)
        await _record_media_info(run, info)
        run.set_progress(3)
        await _transcode(run, source, info, on_ffmpeg)
    finally:
        shutil.rmtree(run.workdir, ignore_errors=True)


async def _drop_dead_outputs(run: JobRun) -> None:
    """Remove earlier attempts' unpublished outputs of this video (a killed worker's snapshots).

    Only one job of a video is live and this attempt holds its lease, so any prefix under
    media/{vid}/ that no live rendition or snapshot row points at belongs to an attempt that is
    over: it can never be published.
    """
    vid = run.job.video_id
    stale = {keys.output_prefix_of(k) for k in await run.ctx.store.list_keys(f"media/{vid}/")}
    stale -= {None, run.prefix}
    if not stale:
        return
    async with transaction(run.ctx.engine) as conn:
        if not await queue.holds(conn, run.job):
            raise LeaseLost()
        stale -= {keys.output_prefix_of(k) for k in await videos.output_keys(conn, vid)}
    for prefix in sorted(p for p in stale if p):
        await run.ctx.store.delete_prefix(prefix)
        log.info("dead_outputs_removed", vid=vid, prefix=prefix)


async def _source_file(run: JobRun, on_ffmpeg: Callable) -> Path:
    """A local path to the source: the stored file itself on local disk, else a download."""
    if run.job.kind == "import":
        from vasset.transcode.importer import import_source

        await import_source(run.ctx, run.job, run.workdir)
    elif run.job.kind == "clip":
        from vasset.clips.job import make_clip_source

        ffmpeg = functools.partial(_run_ffmpeg, run, "clip", on_ffmpeg=on_ffmpeg)
        await make_clip_source(run, ffmpeg, LeaseLost)
    async with transaction(run.ctx.engine) as conn:
        video = await videos.get_video(conn, run.job.video_id)
        # A new source uploaded with replace= is transcoded instead of the current one.
        stored = await replace.source_of(conn, run, video)
    if video is None or not stored:
        raise errors.VideoNotFound("the video or its source is gone")
    local = run.ctx.store.local_path(stored)
    if local is not None and local.is_file():
        return local
    target = run.workdir / "source"
    await run.ctx.store.download_file(stored, target)
    return target


async def _record_media_info(run: JobRun, info: MediaInfo) -> None:
    """Store what the probe found on the source video row."""
    width, height = info.display_size
    details = {
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
        "bitrate": info.bitrate,
        "frame_rate": round(info.frame_rate, 3),
        "rotation": info.rotation,
        "format": info.format,
        "variable_frame_rate": info.variable_frame_rate,
        "stored_width": info.width,
        "stored_height": info.height,
    }
    async with transaction(run.ctx.engine) as conn:
        if not await queue.holds(conn, run.job):
            raise LeaseLost()
        await videos.update_video(
            conn,
            run.job.video_id,
            video_width=width,
            video_height=height,
            duration=info.duration_ms,
            media_info=json.dumps(details),
        )


async def _run_ffmpeg(
    run: JobRun, step: str, argv: list[str], duration_ms: int, on_ffmpeg, on_progress=None
):
    s = run.ctx.settings
    if step == "transcode" and s.ffmpeg_readrate > 0:
        argv = _throttled(argv, s.ffmpeg_readrate)
    with ffmpeg_span(run.ctx.tracing, step, argv) as record:
        result = await on_ffmpeg(
            run_ffmpeg(
                argv,
                timeout=timeout_for(duration_ms, s.ffmpeg_timeout_factor, s.ffmpeg_timeout_min),
                stall_timeout=s.ffmpeg_stall_timeout,
                memory_limit=s.ffmpeg_memory_limit or None,
                duration_ms=duration_ms,
                on_progress=on_progress,
                cancel_event=run.cancel,
            )
        )
        record(result)
    if run.cancel.is_set():
        raise LeaseLost()
    result.raise_for_outcome()
    return result


def _throttled(argv: list[str], rate: float) -> list[str]:
    """argv reading its (first) input at rate times real time (tests and benches only)."""
    at = argv.index("-i")
    return [*argv[:at], "-readrate", f"{rate:g}", *argv[at:]]


async def _snapshot_request(run: JobRun, info: MediaInfo) -> snapshots.SnapshotRequest | None:
    """image_count JPEGs at evenly spaced times, to be taken by the ladder's own decode."""
    async with transaction(run.ctx.engine) as conn:
        video = await videos.get_video(conn, run.job.video_id)
    count = (video.image_count if video else 0) or run.ctx.settings.image_count
    times = snapshots.snapshot_times(info.duration_ms, count)
    if not times:
        return None
    width, height = ladder.snapshot_size(
        info.width, info.height, info.rotation, sample_aspect=info.sample_aspect
    )
    out = run.workdir / "snapshots"
    return snapshots.SnapshotRequest(times_ms=times, width=width, height=height, out_dir=str(out))


async def _store_snapshots(run: JobRun, shots: snapshots.SnapshotOutputs) -> None:
    """Upload the snapshots that were written under the attempt's prefix (published later)."""
    rows = []
    for index, (path, at) in enumerate(zip(shots.paths, shots.times_ms, strict=True)):
        if not Path(path).is_file():
            continue
        key = f"{run.prefix}snapshots/{index}.jpg"
        await run.ctx.store.put_file(key, Path(path), "image/jpeg")
        run.uploaded.append(key)
        rows.append((index, at, key))
    run.snapshots = rows  # type: ignore[attr-defined]
    run.snapshot_size = (shots.width, shots.height)  # type: ignore[attr-defined]


async def _transcode(run: JobRun, source: Path, info: MediaInfo, on_ffmpeg) -> None:
    """One FFmpeg process for the whole ladder and the snapshots, then publish lowest first."""
    s = run.ctx.settings
    asked = TranscodeOptions.from_params(run.job.options)
    wanted = asked.definitions or s.ladder
    plans = ladder.plan_ladder(
        info.width,
        info.height,
        info.rotation,
        wanted,
        sample_aspect=info.sample_aspect,
        source_video_bitrate=info.video_bitrate_estimate,
        source_audio_bitrate=info.audio_bitrate,
    )
    hls = s.hls if asked.hls is None else asked.hls  # a job (template) may turn HLS off or on
    live = hls and await progressive.wanted(run)
    segment = progressive.SEGMENT_SECONDS if live else commands.HLS_SEGMENT_SECONDS
    # A remuxed rendition cuts its segments at the source's key frames: they must come often.
    copy = passthrough.choose_passthrough(info, plans, max_keyframe_interval=segment)
    if copy is None:
        why = passthrough.refusal(info, plans[-1], max_keyframe_interval=segment)
        log.debug("passthrough_refused", vid=run.job.video_id, rendition=plans[-1].name, why=why)
    else:
        log.info("passthrough_chosen", vid=run.job.video_id, rendition=copy.name)
    # Watermark and text are drawn on the decode: then no rendition copies the source's video.
    overlay = await overlay_inputs.prepare(run, asked, info)
    copy = None if overlay is not None else copy
    # codec=hevc|av1 adds those renditions beside H.264 (after the passthrough choice: H.264 only)
    plans = with_variants(plans, asked.codec)
    out = run.workdir / "out"
    cmd = commands.build_transcode(
        source,
        plans,
        out,
        has_audio=info.has_audio,
        frame_rate=info.frame_rate,
        demuxer=info.demuxer,
        video_stream=info.video_stream,
        audio_stream=info.audio_stream,
        threads=s.ffmpeg_threads,
        hls=hls,
        hls_playlist_type="event" if live else "vod",
        # Live: a 1 s first segment, then 2 s ones (segments close at the first key frame
        # at least hls_time in), so the first publish comes about a second sooner.
        hls_time=progressive.FIRST_SEGMENT_SECONDS if live else segment,
        first_keyframe=progressive.FIRST_SEGMENT_SECONDS if live else None,
        passthrough=copy,
        snapshots=await _snapshot_request(run, info),
        overlay=overlay,
        storyboard=sidecars.storyboard_request(s, asked, info, run.workdir),
        audio_only=sidecars.audio_request(asked, info, plans, run.workdir, hls, segment),
    )
    cmd.make_directories()

    def progress(p: Progress) -> None:
        if p.fraction is not None:
            run.set_progress(3 + 92 * p.fraction)

    run.publisher = Publisher(run, cmd) if live else None
    ladder_run = _run_ffmpeg(run, "transcode", cmd.argv, info.duration_ms, on_ffmpeg, progress)
    await (run.publisher.alongside(ladder_run) if run.publisher else ladder_run)
    if cmd.snapshots is not None:
        await _store_snapshots(run, cmd.snapshots)
    master_path = None
    if cmd.master_path:
        master_path = Path(cmd.master_path)
        master_path.write_text(commands.master_playlist(cmd.outputs, audio=cmd.audio))
    await asyncio.to_thread(verify_outputs, cmd)
    run.set_progress(96)
    await _publish(run, cmd, out, master_path, info)


async def _upload_tree(run: JobRun, local_dir: Path, prefix: str) -> None:
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            key = prefix + path.relative_to(local_dir).as_posix()
            await run.ctx.store.put_file(key, path)
            run.uploaded.append(key)


async def _publish(
    run: JobRun, cmd: commands.TranscodeCommand, out: Path, master: Path | None, info: MediaInfo
) -> None:
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
            await _upload_tree(run, master.parent, run.prefix + "hls/")
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
    await videos.replace_snapshots(conn, run.job.video_id, rows, width, height)


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
