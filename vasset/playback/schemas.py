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
    format: Annotated[
        str | None, msgspec.Meta(description="mp4, hls or m4a (the audio-only rendition)")
    ] = None
    expires: Expires = None


class SnapshotParams(msgspec.Struct):
    """Query of GET /video/snapshot."""

    vid: Vid
    expires: Expires = None


class PlayUrl(Answer):
    """One playable URL: an MP4 rendition, or the HLS master (definition `auto`)."""

    definition: str
    format: Literal["mp4", "hls", "m4a"]
    url: str
    width: int | None
    height: int | None
    bitrate: int | None
    size: int | None
    #: null: a public video's URL, which does not expire.
    expires_at: int | None


class PlayCaption(Answer):
    """One caption track: the signed URL of its WebVTT file (GET /video/captions lists them too)."""

    lang: str
    label: str
    url: str


class Playback(Answer):
    """Answer of GET /video/playurl."""

    vid: int
    status: VideoStatusName
    duration: int | None
    cover_url: str | None
    play_urls: list[PlayUrl]
    captions: list[PlayCaption]
    playback_policy: Literal["signed", "public"] = "signed"


class Snapshot(Answer):
    """One snapshot image."""

    index: int
    time: int | None
    url: str
    width: int | None
    height: int | None
    expires_at: int | None


class Snapshots(Answer):
    """Answer of GET /video/snapshot."""

    vid: int
    cover_index: int | None
    snapshots: list[Snapshot]
