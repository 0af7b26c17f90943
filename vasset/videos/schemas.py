"""Query parameters and answers of /video/status, /video/mediainfo, /video/delete, /video/list."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.http.params import Count, Id
from vasset.http.schemas import Answer, Md5Hex, VideoStatusName
from vasset.videos.retention import MAX_TTL

Vid = Annotated[Id, msgspec.Meta(description="video id", examples=[42])]
Ttl = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_TTL,
        description="seconds after its creation the video and all its objects are deleted"
        " (default: the app's default ttl, else kept)",
        examples=[86400],
    ),
]
DeleteAt = Annotated[
    int | None,
    msgspec.Meta(description="unix seconds the video will be deleted at (a ttl); null: kept"),
]


class VidParams(msgspec.Struct):
    """A query that names one video."""

    vid: Vid


class ListParams(msgspec.Struct):
    """Query of GET /video/list."""

    status: Annotated[
        str | None, msgspec.Meta(description="only videos in this status", examples=["playable"])
    ] = None
    limit: Annotated[Count, msgspec.Meta(description="page size, 1-100")] = 20
    cursor: Annotated[str | None, msgspec.Meta(description="next_cursor of the last page")] = None


class Status(Answer):
    """Answer of GET /video/status."""

    vid: int
    status: VideoStatusName
    playable: bool
    progress: Annotated[int, msgspec.Meta(ge=0, le=100)]
    error: Annotated[
        str | None, msgspec.Meta(description="`Code` or `Code: message` of a failed upload/job")
    ]
    delete_at: DeleteAt
    ladder: Annotated[
        Literal["partial", "complete"] | None,
        msgspec.Meta(
            description="partial: HLS playable while the transcode continues; complete: every"
            " rendition is published; null: nothing playable"
        ),
    ]


class Rendition(Answer):
    """One rendition of a video."""

    definition: str | None
    format: str | None
    width: int | None
    height: int | None
    size: int | None
    bitrate: int | None
    status: str


class MediaInfo(Answer):
    """Answer of GET /video/mediainfo (media fields are null until probed)."""

    vid: int
    source_name: str
    file_size: int | None
    md5: Md5Hex | None
    status: VideoStatusName
    duration: int | None
    video_width: int | None
    video_height: int | None
    video_codec: str | None
    audio_codec: str | None
    bitrate: int | None
    frame_rate: float | None
    rotation: int | None
    format: str | None
    #: Upload-Metadata keys a tus or IETF client sent (other than the file name).
    metadata: dict[str, str] | None
    renditions: list[Rendition]
    delete_at: DeleteAt


class Deleted(Answer):
    """Answer of POST /video/delete."""

    vid: int
    deleted: Literal[True]
