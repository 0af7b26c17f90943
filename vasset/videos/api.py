"""HTTP routes of /video/status, /video/mediainfo, /video/delete and /video/list."""

from __future__ import annotations

from litestar import get, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped
from vasset.videos.listing import VideoPage, list_videos
from vasset.videos.schemas import Deleted, ListParams, MediaInfo, Status, VidParams

NOT_FOUND = (errors.VideoNotFound,)


@get(
    "/video/status",
    dependencies={"q": query(VidParams, signed=True)},
    **doc(
        tag="videos",
        query=VidParams,
        codes=NOT_FOUND,
        example={
            "vid": 42,
            "status": "playable",
            "playable": True,
            "progress": 100,
            "error": None,
            "delete_at": None,
            "ladder": "complete",
        },
    ),
)
async def video_status(ctx: Ctx, caller: Caller, q: NamedDependency[VidParams]) -> Status:
    """Status, playability and progress."""
    return shaped(await ctx.videos.status(caller.id, q.vid), Status)


@get(
    "/video/mediainfo",
    dependencies={"q": query(VidParams, signed=True)},
    **doc(tag="videos", query=VidParams, codes=NOT_FOUND),
)
async def video_mediainfo(ctx: Ctx, caller: Caller, q: NamedDependency[VidParams]) -> MediaInfo:
    """Known media facts and renditions."""
    return shaped(await ctx.videos.mediainfo(caller.id, q.vid), MediaInfo)


@post(
    "/video/delete",
    status_code=200,
    dependencies={"q": query(VidParams, signed=True)},
    **doc(tag="videos", query=VidParams, codes=NOT_FOUND, example={"vid": 42, "deleted": True}),
)
async def video_delete(ctx: Ctx, caller: Caller, q: NamedDependency[VidParams]) -> Deleted:
    """Delete a video; shared bytes survive."""
    answer = await ctx.videos.delete(caller.id, q.vid)
    ctx.playback.forget(q.vid)
    return shaped(answer, Deleted)


@get(
    "/video/list",
    dependencies={"q": query(ListParams, signed=True)},
    **doc(tag="videos", query=ListParams),
)
async def video_list(ctx: Ctx, caller: Caller, q: NamedDependency[ListParams]) -> VideoPage:
    """The caller's top-level videos, newest first, a page at a time."""
    return await list_videos(ctx.engine, caller.id, q.status, q.limit, q.cursor)


ROUTES = [video_status, video_mediainfo, video_delete, video_list]
