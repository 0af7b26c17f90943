"""The console's player extras: a video's captions and storyboard, the app's templates.

Each route reads through the domain service the signed API uses, for the console's app.
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath

from vasset.console.guard import authorized
from vasset.http.deps import Ctx
from vasset.http.responses import json_response


@get("/console/api/videos/{vid:int}/captions")
async def console_captions(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """The GET /video/captions answer: each caption track's signed WebVTT URL."""
    app = await authorized(request, ctx)
    return json_response(await ctx.captions.tracks(app.id, vid, None))


ROUTES = [console_captions]
