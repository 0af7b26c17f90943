"""HTTP route of POST /video/clip: parse the query once, hand it to ClipRequests."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.clips.service import ClipRequests
from vasset.http.deps import Ctx, provide_caller, query
from vasset.http.openapi import doc
from vasset.http.params import Id
from vasset.http.schemas import Answer
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.schemas import Definitions, TaskPriority
from vasset.videos.schemas import Vid


class ClipParams(msgspec.Struct):
    """Query of POST /video/clip."""

    vid: Vid
    ranges: Annotated[
        str,
        msgspec.Meta(
            description="START-END[,START-END...] in ms of vid's source, at most 20, in play order",
            examples=["1000-4000,8000-9500"],
            max_length=1000,
        ),
    ]
    intro: Annotated[Id | None, msgspec.Meta(description="video played before the ranges")] = None
    outro: Annotated[Id | None, msgspec.Meta(description="video played after the ranges")] = None
    priority: TaskPriority = None
    definitions: Definitions = None


class ClipQueued(Answer):
    """A clip is queued: the new video is uploading until its source is made."""

    vid: int
    source_vid: int
    status: Literal["uploading"]


@post(
    "/video/clip",
    status_code=200,
    dependencies={"q": query(ClipParams)},
    **doc(
        tag="transcode",
        query=ClipParams,
        codes=(
            errors.VideoNotFound,
            errors.InvalidState,
            errors.ClipRangesMalformed,
            errors.ClipTooManyRanges,
            errors.ClipRangeReversed,
            errors.ClipRangeEmpty,
            errors.ClipRangesOverlap,
            errors.ClipRangeOutOfBounds,
        ),
        example={"vid": 43, "source_vid": 42, "status": "uploading"},
    ),
)
async def clip(request: Request, ctx: Ctx, q: NamedDependency[ClipParams]) -> ClipQueued:
    """Make a new video from time ranges of a video, with an optional intro and outro."""
    app = await provide_caller(request, ctx)
    # ClipRequests only holds the Context: built per call, no field on the shared Context.
    new = await ClipRequests(ctx).create(
        app.id,
        q.vid,
        q.ranges,
        intro=q.intro,
        outro=q.outro,
        priority=q.priority,
        options=TranscodeOptions(definitions=q.definitions),
    )
    return ClipQueued(vid=new, source_vid=q.vid, status="uploading")


ROUTES = [clip]
