"""GET /video/list: an app's top-level videos, newest first, with an opaque keyset cursor."""

from __future__ import annotations

import base64
import binascii

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.videos import repository
from vasset.videos.state import VideoStatus

MAX_LIMIT = 100
_CURSOR_PREFIX = "v1:"


class VideoSummary(msgspec.Struct):
    """One entry of the list answer."""

    vid: int
    source_name: str
    status: str
    playable: bool
    duration: int | None
    file_size: int
    create_time: int


class VideoPage(msgspec.Struct):
    """The list answer: a page of videos and the cursor of the next page (null at the end)."""

    videos: list[VideoSummary]
    next_cursor: str | None


def encode_cursor(last_vid: int) -> str:
    """An opaque cursor pointing after last_vid (clients never build or parse it)."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_vid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The vid a cursor points after, or InvalidParameter."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    number = raw.removeprefix(_CURSOR_PREFIX)
    valid = raw.startswith(_CURSOR_PREFIX) and number.isascii() and number.isdigit()
    if not valid or not 0 < int(number) < 2**63:
        raise errors.InvalidParameter("unknown cursor", parameter="cursor")
    return int(number)


def check_status(value: str | None) -> str | None:
    """A video status to filter on, or InvalidParameter."""
    if value is None:
        return None
    try:
        return VideoStatus(value).value
    except ValueError:
        known = ", ".join(s.value for s in VideoStatus)
        raise errors.InvalidParameter(
            f"status must be one of {known}", parameter="status"
        ) from None


async def list_videos(
    engine: AsyncEngine, app_id: int, status: str | None, limit: int, cursor: str | None
) -> VideoPage:
    """One page of the app's videos, newest first (ids grow with creation time)."""
    status = check_status(status)
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}", parameter="limit")
    before = decode_cursor(cursor) if cursor else None
    async with transaction(engine) as conn:
        rows = await repository.list_videos(conn, app_id, limit + 1, status, before)
    page = [
        VideoSummary(
            vid=r.id,
            source_name=r.source_name,
            status=r.status,
            playable=r.playable,
            duration=r.duration,
            file_size=r.file_size,
            create_time=r.create_time,
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return VideoPage(videos=page, next_cursor=encode_cursor(page[-1].vid) if more else None)
