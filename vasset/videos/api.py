"""HTTP routes of /video/status, /video/mediainfo, /video/delete and /video/list."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post

from vasset.http.auth import ctx_of, query_string, signed_app
from vasset.http.params import Count, Id, parse_params
from vasset.http.responses import json_response
from vasset.videos.listing import list_videos


class VidParams(msgspec.Struct):
    """A query that names one video."""

    vid: Id = msgspec.field()


class ListParams(msgspec.Struct):
    """Query of GET /video/list."""

    status: str | None = None
    limit: Count = 20
    cursor: str | None = None


def _vid(request: Request) -> int:
    p = parse_params(query_string(request), VidParams)
    if p.vid <= 0:
        from vasset.errors import InvalidParameter

        raise InvalidParameter("vid must be a positive integer", parameter="vid")
    return p.vid


@get("/video/status")
async def video_status(request: Request) -> Response:
    """Status, playability and progress."""
    app = await signed_app(request)
    return json_response(await ctx_of(request).videos.status(app.id, _vid(request)))


@get("/video/mediainfo")
async def video_mediainfo(request: Request) -> Response:
    """Known media facts and renditions."""
    app = await signed_app(request)
    return json_response(await ctx_of(request).videos.mediainfo(app.id, _vid(request)))


@post("/video/delete", status_code=200)
async def video_delete(request: Request) -> Response:
    """Delete a video; shared bytes survive."""
    app = await signed_app(request)
    vid = _vid(request)
    answer = await ctx_of(request).videos.delete(app.id, vid)
    playback = ctx_of(request).extras.get("playback")
    if playback is not None:
        playback.forget(vid)
    return json_response(answer)


@get("/video/list")
async def video_list(request: Request) -> Response:
    """The caller's top-level videos, newest first, a page at a time."""
    app = await signed_app(request)
    p = parse_params(query_string(request), ListParams)
    page = await list_videos(ctx_of(request).engine, app.id, p.status, p.limit, p.cursor)
    return json_response(page)


ROUTES = [video_status, video_mediainfo, video_delete, video_list]
