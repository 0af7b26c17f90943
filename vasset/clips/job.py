"""The worker side of a clip job: make the new video's source, then the normal ladder runs.

Runs inside a leased "clip" job (the transcode queue's claim, slots and fencing): the inputs
are read from storage, cut or re-encoded by one FFmpeg run (clips.commands), and the result is
stored as the new video's source; the video then moves uploading -> uploaded -> queued ->
transcoding in one transaction while the job's token holds, and the same job goes on with the
probe and the ladder (pipeline).
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from vasset import errors
from vasset.clips import commands
from vasset.clips.ranges import check_bounds, on_keyframes
from vasset.clips.service import ClipSpec
from vasset.db import transaction
from vasset.storage import keys
from vasset.transcode import queue
from vasset.transcode.probe import MediaInfo, ffprobe_json, probe
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.transcode.jobrun import JobRun

log = structlog.get_logger(__name__)
V = VideoStatus
_KEYFRAME_SCAN_TIMEOUT = 120


async def _input(run: JobRun, vid: int, role: str) -> Path:
    """A local path to the source of one of the job's app's videos (downloaded on OSS)."""
    async with transaction(run.ctx.engine) as conn:
        video = await videos.get_video(conn, vid, run.job.app_id)
    if video is None or not video.storage_uri:
        # Deleted since the request: nothing to retry.
        raise errors.InvalidState(f"the clip's {role} video {vid} is gone")
    local = run.ctx.store.local_path(video.storage_uri)
    if local is not None and local.is_file():
        return local
    target = run.workdir / f"clip-{role}"
    await run.ctx.store.download_file(video.storage_uri, target)
    return target


def _keyframes(path: Path, demuxer: str | None, around: list[int]) -> list[int]:
    proc = subprocess.run(
        commands.keyframes_argv(path, demuxer, around),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_KEYFRAME_SCAN_TIMEOUT,
        check=False,
    )
    return commands.parse_keyframes(proc.stdout) if proc.returncode == 0 else []


def _md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            md5.update(block)
    return md5.hexdigest()


def _piece(path: Path, info: MediaInfo) -> commands.Piece:
    return commands.Piece(
        path=str(path),
        demuxer=info.demuxer,
        duration_ms=info.duration_ms,
        has_audio=info.has_audio,
    )


class _Glance(msgspec.Struct, frozen=True):
    """What the stream-copy decision needs of the main source (ffprobe's header read)."""

    duration_ms: int
    has_audio: bool
    demuxer: str | None
    frame_ms: float


def _glance(path: Path) -> _Glance:
    data = ffprobe_json(path)
    streams = data.get("streams") or []
    video: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "video"), {})
    rate = video.get("avg_frame_rate") or video.get("r_frame_rate") or "25/1"
    num, _, den = rate.partition("/")
    fps = float(num or 0) / float(den or 1) if float(den or 1) else 0.0
    return _Glance(
        duration_ms=int(float(data["format"].get("duration") or 0) * 1000),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        demuxer=data["format"].get("format_name"),
        frame_ms=1000 / fps if fps > 0 else 40.0,
    )


async def _plan(run: JobRun, spec: ClipSpec, out: Path) -> tuple[list[str], str, int]:
    """(argv, mode, output duration in ms) of the clip's one FFmpeg run."""
    memory = run.ctx.settings.ffmpeg_memory_limit or None
    main = await _input(run, spec.vid, "vid")
    total = sum(r.duration_ms for r in spec.ranges)
    if spec.intro is None and spec.outro is None:
        # The source was fully probed by its own transcode: a header read and the packets
        # around the cuts decide whether a copy is frame-exact (no MediaInfo, no decode).
        look = await asyncio.to_thread(_glance, main)
        check_bounds(spec.ranges, look.duration_ms)
        cuts = [t for r in spec.ranges for t in (r.start_ms, r.end_ms)]
        found = await asyncio.to_thread(_keyframes, main, look.demuxer, cuts)
        tol = max(1, int(look.frame_ms / 2))
        if on_keyframes(spec.ranges, found, look.duration_ms, tol=tol):
            script = run.workdir / "clip.ffconcat"
            script.write_text(commands.concat_list(main, spec.ranges))
            return commands.copy_argv(script, look.demuxer, out, look.has_audio), "copy", total
    info = await asyncio.to_thread(probe, main, memory_limit=memory)
    # Checked again against the probe: the stored duration may be a rounded or older figure.
    check_bounds(spec.ranges, info.duration_ms)
    pieces = [
        commands.Piece(
            path=str(main),
            demuxer=info.demuxer,
            start_ms=r.start_ms,
            end_ms=r.end_ms,
            duration_ms=r.duration_ms,
            has_audio=info.has_audio,
        )
        for r in spec.ranges
    ]
    for role, vid in (("intro", spec.intro), ("outro", spec.outro)):
        if vid is None:
            continue
        path = await _input(run, vid, role)
        extra = _piece(path, await asyncio.to_thread(probe, path, memory_limit=memory))
        total += extra.duration_ms
        pieces = [extra, *pieces] if role == "intro" else [*pieces, extra]
    width, height = info.display_size
    argv = commands.reencode_argv(
        pieces,
        out,
        width=width,
        height=height,
        frame_rate=info.frame_rate,
        threads=run.ctx.settings.ffmpeg_threads,
    )
    return argv, "reencode", total


async def make_clip_source(
    run: JobRun, ffmpeg: Callable[[list[str], int], Awaitable[Any]], lease_lost: type[Exception]
) -> None:
    """Make and store the clip's source, then move its video on (idempotent per attempt).

    ffmpeg(argv, duration_ms) runs FFmpeg under the job's slot, watchdog and cancel; lease_lost
    is raised when the job's token no longer holds (both from the pipeline, which imports us).
    """
    ctx, job = run.ctx, run.job
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, job.video_id)
    if video is None:
        raise errors.VideoNotFound()
    if video.status != V.UPLOADING and video.storage_uri:
        return  # made by an earlier attempt
    spec = ClipSpec.from_params(job.options)
    started = time.monotonic()
    out = run.workdir / "clip.mp4"
    argv, mode, duration_ms = await _plan(run, spec, out)
    await ffmpeg(argv, duration_ms)
    run.check()
    key = keys.source_key(job.app_id, job.video_id, keys.new_nonce())
    await ctx.store.put_file(key, out, "video/mp4")
    size = out.stat().st_size
    md5 = await asyncio.to_thread(_md5, out)
    try:
        async with transaction(ctx.engine) as conn:
            await videos.get_video(conn, job.video_id, for_update=True)
            if not await queue.holds(conn, job, lock=True):
                raise lease_lost()
            # The clip is uploaded, and this job's attempt goes on to transcode it.
            await videos.move_video(
                conn,
                job.video_id,
                V.UPLOADING,
                V.UPLOADED,
                storage_uri=key,
                file_size=size,
                hash=md5,
            )
            await videos.move_video(conn, job.video_id, V.UPLOADED, V.TRANSCODE_QUEUED)
            await videos.move_video(conn, job.video_id, V.TRANSCODE_QUEUED, V.TRANSCODING)
    except BaseException:
        await ctx.store.delete(key)  # never recorded: nobody else knows the key
        raise
    log.info(
        "clip_source_made",
        vid=job.video_id,
        source_vid=spec.vid,
        mode=mode,
        ranges=len(spec.ranges),
        intro=spec.intro,
        outro=spec.outro,
        size=size,
        elapsed=round(time.monotonic() - started, 3),
    )
