"""What the transcode calls decide: which videos may be queued, and imports as new videos."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.db import run_transaction
from vasset.transcode import importer, ladder, queue
from vasset.transcode.options import TranscodeOptions
from vasset.videos import repository as videos
from vasset.videos.state import TRANSCODABLE, VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context


def checked_definitions(value: str | None, default: str) -> str | None:
    """Validate a comma list of definitions against the configured ladder."""
    if not value:
        return None
    try:
        wanted = ladder.parse_ladder(value)
        known = {r.name for r in ladder.parse_ladder(default)}
    except ValueError as exc:
        raise errors.InvalidParameter(str(exc), parameter="definitions") from None
    unknown = [r.name for r in wanted if r.name not in known]
    if unknown:
        raise errors.InvalidParameter(
            f"unknown definitions {unknown}; the ladder is {default}", parameter="definitions"
        )
    return ",".join(r.name for r in wanted)


def checked_options(options: TranscodeOptions, default_ladder: str) -> TranscodeOptions:
    """Options with their definitions validated and normalised (raises InvalidParameter)."""
    return msgspec.structs.replace(
        options, definitions=checked_definitions(options.definitions, default_ladder)
    )


class TranscodeRequests:
    """Queues transcodes of existing videos and imports of source URIs (built once per process)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def enqueue(
        self,
        app_id: int,
        vid: int,
        kind: str,
        priority: int | None,
        options: TranscodeOptions | None = None,
    ) -> int:
        """Queue a (re)transcode of one of the app's videos; returns the vid."""
        ctx = self.ctx
        params = checked_options(options or TranscodeOptions(), ctx.settings.ladder).to_params()

        async def enqueue(conn: AsyncConnection) -> None:
            video = await videos.get_video(conn, vid, app_id, for_update=True)
            if video is None:  # with app_id, renditions are not found either
                raise errors.VideoNotFound()
            if video.status not in TRANSCODABLE:
                raise errors.InvalidState(f"a video that is {video.status} cannot be transcoded")
            prio = video.task_priority if priority is None else priority
            await queue.enqueue(
                conn, app_id, vid, kind, prio, ctx.settings.job_max_attempts, params
            )

        # Run again on a deadlock: a burst on one video must not answer 503 for a lock conflict.
        await run_transaction(ctx.engine, enqueue)
        await ctx.wakeup.wake()
        return vid

    async def import_source(
        self,
        app_id: int,
        src: str,
        dst: str | None,
        priority: int,
        options: TranscodeOptions | None = None,
        ttl: int | None = None,
    ) -> int:
        """Create a video fetched from src by a worker; returns its vid (ttl: its lifetime)."""
        ctx = self.ctx
        s = ctx.settings
        await importer.check_source(ctx, app_id, src)
        asked = checked_options(options or TranscodeOptions(), s.ladder).to_params()
        name = src.rstrip("/").rsplit("/", 1)[-1][:200] or "import"

        async def create(conn: AsyncConnection) -> int:
            vid = await videos.insert_video(
                conn,
                app_id=app_id,
                source_name=name,
                status=VideoStatus.UPLOADING.value,
                task_priority=priority,
                image_count=s.image_count,
                ttl=ttl,
            )
            params = {"src": src, "dst": dst, **asked}
            await queue.enqueue(conn, app_id, vid, "import", priority, s.job_max_attempts, params)
            return vid

        vid = await run_transaction(ctx.engine, create)
        await ctx.wakeup.wake()
        return vid
