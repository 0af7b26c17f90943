"""What POST /video/clip decides: the ranges, the videos involved, the new video and its job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.clips.ranges import Range, check_bounds, parse_ranges
from vasset.db import run_transaction
from vasset.transcode import queue
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.requests import checked_options
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context

#: A video's stored source is complete from these statuses on.
_NO_SOURCE = frozenset({VideoStatus.UPLOADING, VideoStatus.UPLOAD_FAILED})


class ClipSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a clip job makes, stored as the job's params["clip"]."""

    vid: int
    ranges: list[Range]
    intro: int | None = None
    outro: int | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ClipSpec:
        """The spec a clip job carries."""
        return msgspec.convert(params["clip"], cls)


async def _stored_source(conn: AsyncConnection, app_id: int, vid: int, role: str) -> Any:
    """The app's video with a complete source; another app's is VideoNotFound."""
    video = await videos.get_video(conn, vid, app_id)
    if video is None or video.parent_id is not None:
        raise errors.VideoNotFound(f"{role} video {vid} not found", parameter=role)
    if video.status in _NO_SOURCE or not video.storage_uri:
        raise errors.InvalidState(
            f"the {role} video is {video.status}: a clip needs an uploaded source", parameter=role
        )
    return video


class ClipRequests:
    """Creates clip videos; the work is a "clip" job in the transcode queue (built once)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self,
        app_id: int,
        vid: int,
        ranges_text: str,
        *,
        intro: int | None = None,
        outro: int | None = None,
        priority: int | None = None,
        options: TranscodeOptions | None = None,
    ) -> int:
        """Queue a clip of vid's ranges (with intro/outro) as a new video; returns its vid."""
        ctx = self.ctx
        s = ctx.settings
        ranges = parse_ranges(ranges_text)
        asked = checked_options(options or TranscodeOptions(), s.ladder).to_params()

        async def create(conn: AsyncConnection) -> int:
            source = await _stored_source(conn, app_id, vid, "vid")
            for role, other in (("intro", intro), ("outro", outro)):
                if other is not None:
                    await _stored_source(conn, app_id, other, role)
            if not source.duration:
                raise errors.InvalidState(
                    "the source's duration is not known yet: transcode it first", parameter="vid"
                )
            check_bounds(ranges, source.duration)
            prio = source.task_priority if priority is None else priority
            new = await videos.insert_video(
                conn,
                app_id=app_id,
                source_name=f"clip-{vid}-{source.source_name}"[:255],
                status=VideoStatus.UPLOADING.value,
                task_priority=prio,
                image_count=s.image_count,
            )
            spec = ClipSpec(vid=vid, ranges=ranges, intro=intro, outro=outro)
            params = {"clip": msgspec.to_builtins(spec), **asked}
            await queue.enqueue(conn, app_id, new, "clip", prio, s.job_max_attempts, params)
            return new

        new = await run_transaction(ctx.engine, create)
        await ctx.wakeup.wake()
        return new
