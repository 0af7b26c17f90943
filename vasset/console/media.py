"""The console's player extras: a video's captions and storyboard, the app's templates.

Each route reads through the domain service the signed API uses, for the console's app.
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath

from vasset.console.guard import authorized
from vasset.http.deps import Ctx
from vasset.http.responses import json_response
from vasset.playback.storyboard import storyboard
from vasset.templates.service import TemplateService


@get("/console/api/videos/{vid:int}/captions")
async def console_captions(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """The GET /video/captions answer: each caption track's signed WebVTT URL."""
    app = await authorized(request, ctx)
    return json_response(await ctx.captions.tracks(app.id, vid, None))


@get("/console/api/videos/{vid:int}/storyboard")
async def console_storyboard(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """The GET /video/storyboard answer: the signed WebVTT track and sprite sheet URLs."""
    app = await authorized(request, ctx)
    return json_response(await storyboard(ctx, app.id, vid, None))


@get("/console/api/templates")
async def console_templates(request: Request, ctx: Ctx) -> Response:
    """The GET /video/templates answer: the app's transcode templates by name."""
    app = await authorized(request, ctx)
    return json_response(await TemplateService(ctx.engine, ctx.settings).listing(app.id))


ROUTES = [console_captions, console_storyboard, console_templates]
