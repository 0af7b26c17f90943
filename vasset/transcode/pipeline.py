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

from vasset import errors
from vasset.assets import jobs as overlay_inputs
from vasset.db import transaction
from vasset.storage import keys
from vasset.tracing.spans import ffmpeg_span, job_span
from vasset.transcode import commands, ladder, passthrough, progressive, queue, sidecars, snapshots
from vasset.transcode.codecs import with_variants
from vasset.transcode.jobrun import JobRun as JobRun
from vasset.transcode.jobrun import LeaseLost as LeaseLost
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.outputs import verify_outputs
from vasset.transcode.probe import MediaInfo, probe
from vasset.transcode.progressive import Publisher
from vasset.transcode.publish import discard_outputs as discard_outputs
from vasset.transcode.publish import publish_outputs
from vasset.transcode.sandbox import Progress, run_ffmpeg, timeout_for
from vasset.upload import replace
from vasset.videos import repository as videos

log = structlog.get_logger(__name__)


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
        # The video row first, then the job's (videos.lock_video): the API's lock order.
        video = await videos.get_video(conn, run.job.video_id, for_update=True)
        if video is None or not await queue.holds(conn, run.job):
            raise LeaseLost()
        # Merged, not replaced: what earlier attempts published (the HLS master, the ladder
        # state, the storyboard) keeps playing until this attempt publishes its own.
        merged = {**json.loads(video.media_info or "{}"), **details}
        await videos.update_video(
            conn,
            run.job.video_id,
            video_width=width,
            video_height=height,
            duration=info.duration_ms,
            media_info=json.dumps(merged),
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
    copied_audio = passthrough.audio_copy(info, plans)
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
        audio_only=sidecars.audio_request(
            asked, info, plans, run.workdir, hls, segment, copied_audio
        ),
        audio_copy=copied_audio,
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
    await publish_outputs(run, cmd, master_path)
