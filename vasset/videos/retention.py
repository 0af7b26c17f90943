"""Retention (the quick-download mode): videos that carry a deadline are deleted after it.

A ttl on init, on an import or on a ticket (else the app's default, `vasset apps ttl`) sets
``video.delete_at`` when the video row is created (videos/repository.py insert_video). The
janitor then deletes each video past it through the same path as POST /video/delete, so its
objects, renditions, snapshots and jobs go the same way and ``video.deleted`` is emitted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.videos import repository as repo

if TYPE_CHECKING:
    from vasset.videos.service import VideoService

log = structlog.get_logger(__name__)

#: The longest ttl accepted (ten years): longer is a typo, or meant "keep" (no ttl).
MAX_TTL = 10 * 365 * 86400
#: Videos deleted per query; a pass takes batches until none is left.
BATCH = 100


def check_ttl(ttl: int | None) -> int | None:
    """A ttl in seconds (1..MAX_TTL), None for none, or InvalidParameter."""
    if ttl is None:
        return None
    if not 1 <= ttl <= MAX_TTL:
        raise errors.InvalidParameter(
            f"ttl must be between 1 and {MAX_TTL} seconds", parameter="ttl"
        )
    return ttl


async def delete_expired(engine: AsyncEngine, videos: VideoService) -> int:
    """Delete every live video past its delete_at (the janitor's sweep); returns how many."""
    deleted = 0
    while True:
        async with transaction(engine) as conn:
            due = await repo.expired_videos(conn, int(time.time()), BATCH)
        for app_id, vid in due:
            try:
                await videos.delete(app_id, vid)
            except errors.VideoNotFound:
                continue  # deleted meanwhile (the API, or another janitor)
            log.info("video_expired", vid=vid, app_id=app_id)
            deleted += 1
        if len(due) < BATCH:
            return deleted
