"""Thumbnails on demand: one frame at a time and width, made once by FFmpeg and kept in storage.

A thumbnail is cut from the playable MP4 rendition that fits the asked width best (the smallest
one at least that wide, else the widest), with an input seek and one decoded frame. It is stored
under the attempt prefix of that rendition (keys.thumbnail_key), so the next request for the same
(vid, rendition set, time, width, format) is a storage HEAD, and a retranscode's new rendition
set gets new thumbnails (the old ones leave with the old attempt's objects).

It runs in the API process, not through the job queue: one seek and one frame take a fraction of
a second, while a queued job would wait behind whole-ladder transcodes. A per-process semaphore
caps the FFmpeg processes (beyond it: 503 ThumbnailUnavailable with Retry-After), and each runs
under a timeout in the transcode sandbox.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from vasset import errors
from vasset.db import transaction
from vasset.storage import keys
from vasset.transcode.ffargs import common_args
from vasset.transcode.sandbox import Outcome, run_ffmpeg
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context
    from vasset.videos.repository import VideoRow

log = structlog.get_logger(__name__)

#: Formats a thumbnail is made in, and their content types.
CONTENT_TYPES = {"jpg": "image/jpeg", "webp": "image/webp"}
MIN_WIDTH = 32
MAX_WIDTH = 1920
#: A seek closer to the end than this may find no frame to decode: later times show this one.
END_MARGIN_MS = 250
#: Protocols FFmpeg may read a presigned (OSS) rendition URL with; local renditions: file only.
REMOTE_PROTOCOLS = "http,https,tcp,tls"


def seek_time(time_ms: int, duration_ms: int) -> int:
    """The time a thumbnail is cut at: time_ms, kept END_MARGIN_MS before the end."""
    return max(0, min(time_ms, duration_ms - END_MARGIN_MS))


def thumbnail_height(width: int, source_width: int, source_height: int) -> int:
    """The even height of a width-wide image of a source_width x source_height frame."""
    return max(2, round(width * source_height / source_width / 2) * 2)


def pick_rendition(renditions: list[VideoRow], width: int) -> VideoRow | None:
    """The playable MP4 to cut from: the smallest at least width wide, else the widest."""
    mp4s = [
        r
        for r in renditions
        if r.format == "mp4" and r.storage_uri and r.video_width and r.video_height
    ]
    if not mp4s:
        return None
    mp4s.sort(key=lambda r: (r.video_width or 0, r.id))
    return next((r for r in mp4s if (r.video_width or 0) >= width), mp4s[-1])


def build_thumbnail(
    source: str,
    out: str | os.PathLike[str],
    *,
    seek_ms: int,
    width: int,
    height: int,
    fmt: str,
    remote: bool = False,
) -> list[str]:
    """FFmpeg argv for one frame of source (an MP4 rendition) at seek_ms as a jpg or webp."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown thumbnail format: {fmt!r}")
    argv = common_args()
    # Renditions are our own MP4s: only the mov demuxer, and the network only for a presigned URL.
    argv += ["-protocol_whitelist", REMOTE_PROTOCOLS if remote else "file"]
    argv += ["-format_whitelist", "mov", "-f", "mov"]
    # -ss before -i: seek to the key frame before seek_ms, decode only from there (accurate).
    argv += ["-ss", f"{seek_ms / 1000:.3f}", "-threads", "1", "-i", source]
    argv += ["-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn", "-map_metadata", "-1"]
    argv += ["-vf", f"scale={width}:{height}:flags=lanczos,setsar=1"]
    if fmt == "jpg":
        argv += ["-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1"]
    else:
        argv += ["-c:v", "libwebp", "-quality", "80", "-f", "webp"]
    return [*argv, os.fspath(out)]


class Thumbnails:
    """Finds or makes thumbnails of one app's videos (one per API process)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the running loop
        # Makes in flight by key: concurrent requests for one thumbnail share one FFmpeg run.
        self._making: dict[str, asyncio.Future] = {}

    async def thumbnail(
        self, app_id: int, vid: int, time_ms: int | None, width: int | None, fmt: str
    ) -> tuple[VideoRow, str, dict]:
        """(video, stored key, facts: time, width, height, format) of a thumbnail, made if new."""
        async with transaction(self.ctx.engine) as conn:
            video = await videos.get_video(conn, vid, app_id)
            if video is None:
                raise errors.VideoNotFound()
            renditions = [
                r for r in await videos.children(conn, vid) if r.status == VideoStatus.PLAYABLE
            ]
        if time_ms is not None and video.duration is not None and time_ms > video.duration:
            raise errors.InvalidParameter(
                f"time {time_ms} is past the video's end ({video.duration} ms)", parameter="time"
            )
        widest = pick_rendition(renditions, MAX_WIDTH)
        if widest is None:
            raise errors.VideoNotPlayable(
                "the video has no playable rendition to cut a thumbnail from", status=video.status
            )
        if width is None:
            width = min(MAX_WIDTH, (widest.video_width or MIN_WIDTH) // 2 * 2)
        source = pick_rendition(renditions, width)
        assert source is not None and source.storage_uri and source.video_width
        duration = video.duration or source.duration or 0
        at = seek_time(time_ms or 0, duration)
        height = thumbnail_height(width, source.video_width, source.video_height or 2)
        key = keys.thumbnail_key(source.storage_uri, at, width, fmt)
        facts = {"time": at, "width": width, "height": height, "format": fmt}
        if await self.ctx.store.head(key) is not None:
            log.info("thumbnail_cached", vid=vid, key=key)
            return video, key, facts
        making = self._making.get(key)
        if making is None:
            making = asyncio.ensure_future(self._make(vid, source.storage_uri, key, at, facts))
            self._making[key] = making
            making.add_done_callback(lambda _: self._making.pop(key, None))
        await asyncio.shield(making)
        return video, key, facts

    async def _make(self, vid: int, rendition: str, key: str, at: int, facts: dict) -> None:
        """Cut the frame into a temporary file, store it under key, remove the file."""
        cap = self.ctx.settings.thumbnail_concurrency
        if self._slots is None:
            self._slots = asyncio.Semaphore(cap)
        if self._slots.locked():
            raise errors.ThumbnailUnavailable(f"{cap} thumbnails are being made; retry")
        async with self._slots:
            store = self.ctx.store
            local = store.local_path(rendition)
            source = os.fspath(local) if local is not None else None
            if source is None:
                source = store.presign_get(rendition, int(time.time()) + 600)
            if source is None:
                raise errors.StorageError("the rendition cannot be read")
            scratch = Path(self.ctx.settings.temp_dir) / "thumbs"
            scratch.mkdir(parents=True, exist_ok=True)
            out = scratch / f"{secrets.token_hex(8)}.{facts['format']}"
            argv = build_thumbnail(
                source,
                out,
                seek_ms=at,
                width=facts["width"],
                height=facts["height"],
                fmt=facts["format"],
                remote=local is None,
            )
            timeout = self.ctx.settings.thumbnail_timeout
            try:
                started = time.monotonic()
                result = await run_ffmpeg(argv, timeout=timeout, stall_timeout=timeout)
                if result.outcome in (Outcome.TIMEOUT, Outcome.STALLED):
                    raise errors.ThumbnailUnavailable(f"FFmpeg took longer than {timeout} s")
                if result.outcome != Outcome.OK or not out.is_file() or out.stat().st_size == 0:
                    log.error(
                        "thumbnail_failed", vid=vid, key=key, stderr=result.stderr_tail[-500:]
                    )
                    raise errors.VassetError("the thumbnail could not be made")
                await store.put_file(key, out, CONTENT_TYPES[facts["format"]])
                log.info(
                    "thumbnail_made",
                    vid=vid,
                    key=key,
                    elapsed=round(time.monotonic() - started, 3),
                )
            finally:
                out.unlink(missing_ok=True)
