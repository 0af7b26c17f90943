"""Query parameters and answers of /video/playurl and /video/snapshot."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.http.params import Count
from vasset.http.schemas import Answer, VideoStatusName
from vasset.videos.schemas import Vid

Expires = Annotated[
    Count | None,
    msgspec.Meta(description="URL lifetime in seconds (default 3600, capped by the server)"),
]


class PlayParams(msgspec.Struct):
    """Query of GET /video/playurl."""

    vid: Vid
    definition: Annotated[str | None, msgspec.Meta(examples=["720p"])] = None
    format: Annotated[str | None, msgspec.Meta(description="mp4 or hls")] = None
    expires: Expires = None


class SnapshotParams(msgspec.Struct):
    """Query of GET /video/snapshot."""

    vid: Vid
    expires: Expires = None


class PlayUrl(Answer):
    """One playable URL: an MP4 rendition, or the HLS master (definition `auto`)."""

    definition: str
    format: Literal["mp4", "hls"]
    url: str
    width: int | None
    height: int | None
    bitrate: int | None
    size: int | None
    expires_at: int


class Playback(Answer):
    """Answer of GET /video/playurl."""

    vid: int
    status: VideoStatusName
    duration: int | None
    cover_url: str | None
    play_urls: list[PlayUrl]


class Snapshot(Answer):
    """One snapshot image."""

    index: int
    time: int | None
    url: str
    width: int | None
    height: int | None
    expires_at: int


class Snapshots(Answer):
    """Answer of GET /video/snapshot."""

    vid: int
    cover_index: int | None
    snapshots: list[Snapshot]
