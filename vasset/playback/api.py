"""HTTP routes of /video/playurl and /video/snapshot, plus the signed /play file route."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get

from vasset.http.auth import ctx_of, query_string, signed_app
from vasset.http.params import Count, Id, parse_params
from vasset.http.responses import json_response
from vasset.playback.files import play_file
from vasset.playback.service import PlaybackService


class PlayParams(msgspec.Struct):
    """Query of GET /video/playurl."""

    vid: Id
    definition: str | None = None
    format: str | None = None
    expires: Count | None = None


class SnapshotParams(msgspec.Struct):
    """Query of GET /video/snapshot."""

    vid: Id
    expires: Count | None = None


def playback(request: Request) -> PlaybackService:
    """The process's PlaybackService."""
    ctx = ctx_of(request)
    service = ctx.extras.get("playback")
    if service is None:
        service = ctx.extras["playback"] = PlaybackService(ctx)
    return service


@get("/video/playurl")
async def video_playurl(request: Request) -> Response:
    """Signed, expiring play URLs per definition, and the HLS master."""
    app = await signed_app(request)
    p = parse_params(query_string(request), PlayParams)
    return json_response(
        await playback(request).playurl(app.id, p.vid, p.definition, p.format, p.expires)
    )


@get("/video/snapshot")
async def video_snapshot(request: Request) -> Response:
    """Signed snapshot URLs and the cover index."""
    app = await signed_app(request)
    p = parse_params(query_string(request), SnapshotParams)
    return json_response(await playback(request).snapshots(app.id, p.vid, p.expires))


ROUTES = [video_playurl, video_snapshot, play_file]
