"""GET /video/thumbnail: a URL to one frame of a video, made on demand and kept in storage."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.di import NamedDependency

from vasset import errors
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import Answer, shaped
from vasset.playback import policy
from vasset.playback.schemas import Expires
from vasset.playback.thumbnails import MAX_WIDTH, MIN_WIDTH
from vasset.videos.schemas import Vid

ThumbnailFormat = Literal["jpg", "webp"]


TimeMs = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=2**53,
        description="ms from the start (default 0); past the duration: 400",
        examples=[1500],
    ),
]
Width = Annotated[
    int,
    msgspec.Meta(
        ge=MIN_WIDTH,
        le=MAX_WIDTH,
        multiple_of=2,
        description=f"even pixels, {MIN_WIDTH}..{MAX_WIDTH} (default: the widest rendition's)",
        examples=[320],
    ),
]


class ThumbnailParams(msgspec.Struct):
    """Query of GET /video/thumbnail."""

    vid: Vid
    time: TimeMs | None = None
    width: Width | None = None
    format: Annotated[ThumbnailFormat, msgspec.Meta(description="jpg (default) or webp")] = "jpg"
    expires: Expires = None


class Thumbnail(Answer):
    """Answer of GET /video/thumbnail."""

    vid: int
    time: int
    width: int
    height: int
    format: ThumbnailFormat
    url: str
    expires_at: Annotated[int | None, msgspec.Meta(description="null: a public video's URL")]


@get(
    "/video/thumbnail",
    dependencies={"q": query(ThumbnailParams, signed=True)},
    **doc(
        tag="playback",
        query=ThumbnailParams,
        codes=(errors.VideoNotFound, errors.VideoNotPlayable, errors.ThumbnailUnavailable),
        example={
            "vid": 42,
            "time": 1500,
            "width": 320,
            "height": 180,
            "format": "jpg",
            "url": "http://127.0.0.1:8000/play/1700003600/3f1c.../media/42/7-ab12/thumbs/1500-320.jpg",
            "expires_at": 1700003600,
        },
    ),
)
async def video_thumbnail(
    ctx: Ctx, caller: Caller, q: NamedDependency[ThumbnailParams]
) -> Thumbnail:
    """A URL to the frame at time, width pixels wide, as jpg or webp (made once, then stored)."""
    expires_at = ctx.playback.expiry(q.expires)
    video, key, facts = await ctx.playback.thumbnails.thumbnail(
        caller.id, q.vid, q.time, q.width, q.format
    )
    url, until = await policy.object_url(ctx.playback, video, key, expires_at)
    return shaped({"vid": q.vid, **facts, "url": url, "expires_at": until}, Thumbnail)


ROUTES = [video_thumbnail]
