"""What the upload and video domains ask of the transcode queue (kept tiny to avoid cycles)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.settings import Settings


def enqueue_on_upload(settings: Settings):
    """The hook that queues a transcode when an auto=1 upload completes."""

    async def enqueue(conn: AsyncConnection, app_id: int, vid: int, priority: int) -> list[dict]:
        """Queue the video's transcode; with several templates, [{"template", "vid"}] of all."""
        from vasset.templates.service import auto_outputs, enqueue_outputs

        # template= on init or the ticket: the options recorded with the video, one set per
        # template; each beyond the first is a new video sharing the verified bytes.
        jobs = await auto_outputs(conn, vid)
        made = await enqueue_outputs(conn, settings, app_id, vid, priority, jobs)
        return made if len(made) > 1 else []

    return enqueue


async def cancel_video_jobs(conn: AsyncConnection, vid: int) -> None:
    """Cancel queued and running jobs of a deleted video."""
    from vasset.transcode import queue

    await queue.cancel_for_video(conn, vid)
