"""playurl ``format=m4a``: the audio-only rendition (AAC in M4A) of a video, when it has one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from vasset import errors
from vasset.videos.state import Ladder, ladder_of

if TYPE_CHECKING:
    from vasset.videos.repository import VideoRow

FORMAT = "m4a"
DEFINITION = "audio"


def m4a_renditions(
    video: VideoRow, renditions: list[VideoRow], definition: str | None, fmt: str | None
) -> list[VideoRow]:
    """The M4A rows a playurl answers (only for format=m4a).

    No M4A row: 409 VideoNotPlayable while the ladder is not complete (the M4A comes with the
    final publish), else 404 AudioNotFound (no audio in the source, or turned off).
    """
    if fmt != FORMAT:
        return []
    rows = [r for r in renditions if r.format == FORMAT]
    if not rows:
        details = json.loads(video.media_info or "{}")
        if ladder_of(details, bool(renditions)) is not Ladder.COMPLETE:
            raise errors.VideoNotPlayable(
                "the audio rendition comes with the complete ladder", status=video.status
            )
        raise errors.AudioNotFound()
    return [r for r in rows if definition in (None, DEFINITION)]


def play_url(row: VideoRow, url: str, expires_at: int | None) -> dict[str, Any]:
    """One play_urls entry of an M4A rendition (no picture: width and height are null)."""
    extra = json.loads(row.media_info or "{}")
    return {
        "definition": DEFINITION,
        "format": FORMAT,
        "url": url,
        "width": None,
        "height": None,
        "bitrate": extra.get("bitrate"),
        "size": row.file_size,
        "expires_at": expires_at,
    }
