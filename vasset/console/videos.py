"""The console's video routes: a page of the app's videos, delete and retranscode one.

Each route acts for the console's app through the same domain services the signed API calls
(never HTTP to itself); the cookie session stands in for the signature.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from vasset.assets.service import check_overlays
from vasset.console.guard import authorized, json_body
from vasset.db import transaction
from vasset.http.auth import query_string
from vasset.http.deps import Ctx
from vasset.http.params import parse_params
from vasset.http.responses import json_response
from vasset.templates.service import TemplateService
from vasset.transcode.options import TranscodeOptions
from vasset.videos import listing
from vasset.videos import repository as video_rows

QUEUED = "transcode_queued"


class ListQuery(msgspec.Struct):
    """Query of GET /console/api/videos."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=listing.MAX_LIMIT)] = 20
    cursor: str | None = None
    status: str | None = None


@get("/console/api/videos")
async def console_videos(request: Request, ctx: Ctx) -> Response:
    """A page of the console app's videos, newest first, and the cursor of the next page."""
    app = await authorized(request, ctx)
    p = parse_params(query_string(request), ListQuery)
    status = listing.check_status(p.status)
    before = listing.decode_cursor(p.cursor) if p.cursor else None
    async with transaction(ctx.engine) as conn:
        rows = await video_rows.list_videos(conn, app.id, p.limit + 1, status, before)
    page = [
        {
            "vid": r.id,
            "source_name": r.source_name,
            "status": r.status,
            "playable": r.playable,
            "progress": r.progress,
            "file_size": r.file_size,
            "duration": r.duration,
            "create_time": r.create_time,
        }
        for r in rows[: p.limit]
    ]
    cursor = listing.encode_cursor(rows[p.limit - 1].id) if len(rows) > p.limit else None
    return json_response({"videos": page, "next_cursor": cursor})


@post("/console/api/videos/{vid:int}/delete", status_code=200)
async def console_delete(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """Delete one of the app's videos (what POST /video/delete does)."""
    app = await authorized(request, ctx)
    await json_body(request, dict)
    answer = await ctx.videos.delete(app.id, vid)
    ctx.playback.forget(vid)
    return json_response(answer)


class RetranscodeBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of POST /console/api/videos/{vid}/retranscode."""

    definitions: str | None = None
    template: str | None = None


@post("/console/api/videos/{vid:int}/retranscode", status_code=200)
async def console_retranscode(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """Queue a retranscode (what POST /video/retranscode does); the old renditions keep playing."""
    app = await authorized(request, ctx)
    body = await json_body(request, RetranscodeBody)
    explicit = TranscodeOptions(definitions=body.definitions or None)
    templates = TemplateService(ctx.engine, ctx.settings)
    options = await templates.resolve(app.id, body.template or None, explicit)
    await check_overlays(ctx, app.id, options)
    await ctx.transcodes.enqueue(app.id, vid, "retranscode", None, options)
    return json_response({"vid": vid, "status": QUEUED})


ROUTES = [console_videos, console_delete, console_retranscode]
