"""What the upload and video domains ask of the transcode queue (kept tiny to avoid cycles)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.settings import Settings


def enqueue_on_upload(settings: Settings):
    """The hook that queues a transcode when an auto=1 upload completes."""

    async def enqueue(conn: AsyncConnection, app_id: int, vid: int, priority: int) -> None:
        from vasset.templates.service import auto_params
        from vasset.transcode import queue

        # template= on init or the ticket: the options recorded with the video.
        params = await auto_params(conn, vid)
        await queue.enqueue(
            conn, app_id, vid, "transcode", priority, settings.job_max_attempts, params
        )

    return enqueue


async def cancel_video_jobs(conn: AsyncConnection, vid: int) -> None:
    """Cancel queued and running jobs of a deleted video."""
    from vasset.transcode import queue

    await queue.cancel_for_video(conn, vid)
