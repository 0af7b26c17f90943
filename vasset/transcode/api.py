"""HTTP routes of /video/transcode and /video/retranscode (and the spec's /video/retransocde)."""

from __future__ import annotations

from typing import Final

from litestar import Request, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.assets.service import check_overlays
from vasset.http.deps import Ctx, provide_caller, query
from vasset.http.openapi import doc
from vasset.templates.api import templates
from vasset.templates.schemas import Output
from vasset.templates.service import queue_outputs
from vasset.transcode.schemas import Queued, RetranscodeParams, TranscodeParams

QUEUED: Final = "transcode_queued"
_EXAMPLE = {"vid": 42, "status": QUEUED}
_CODES = (errors.VideoNotFound, errors.InvalidState, errors.AssetNotFound, errors.UnknownTemplate)


@post(
    "/video/transcode",
    status_code=200,
    dependencies={"q": query(TranscodeParams)},
    **doc(
        tag="transcode",
        query=TranscodeParams,
        codes=(*_CODES, errors.InvalidSource, errors.EntityTooLarge),
        example=_EXAMPLE,
    ),
)
async def transcode(request: Request, ctx: Ctx, q: NamedDependency[TranscodeParams]) -> Queued:
    """Queue a transcode of a video, or import a source URI as a new video."""
    if q.vid is not None:
        app = await provide_caller(request, ctx)
        if q.template and "," in q.template:
            # Several templates: several outputs (each further one a new video).
            made = await queue_outputs(ctx, app.id, q.vid, q.priority, q.template, q.options())
            return Queued(vid=q.vid, status=QUEUED, outputs=[Output(**m) for m in made])
        options = await templates(ctx).resolve(app.id, q.template, q.options())
        await check_overlays(ctx, app.id, options)
        vid = await ctx.transcodes.enqueue(app.id, q.vid, "transcode", q.priority, options)
        return Queued(vid=vid, status=QUEUED)
    if not q.src:
        raise errors.MissingParameter("missing required parameter: vid or src", parameter="vid")
    app = await provide_caller(request, ctx)
    options = await templates(ctx).resolve(app.id, q.template, q.options())
    await check_overlays(ctx, app.id, options)
    vid = await ctx.transcodes.import_source(app.id, q.src, q.dst, q.priority or 0, options, q.ttl)
    return Queued(vid=vid, status=QUEUED)


async def _retranscode(request: Request, ctx: Ctx, q: NamedDependency[RetranscodeParams]) -> Queued:
    app = await provide_caller(request, ctx)
    options = await templates(ctx).resolve(app.id, q.template, q.options())
    await check_overlays(ctx, app.id, options)
    vid = await ctx.transcodes.enqueue(app.id, q.vid, "retranscode", q.priority, options)
    return Queued(vid=vid, status=QUEUED)


_RETRANSCODE = doc(tag="transcode", query=RetranscodeParams, codes=_CODES, example=_EXAMPLE)


@post(
    "/video/retranscode",
    status_code=200,
    dependencies={"q": query(RetranscodeParams)},
    **_RETRANSCODE,
)
async def retranscode(request: Request, ctx: Ctx, q: NamedDependency[RetranscodeParams]) -> Queued:
    """Re-run the ladder; the new renditions replace the old ones atomically when done."""
    return await _retranscode(request, ctx, q)


@post(
    "/video/retransocde",
    status_code=200,
    dependencies={"q": query(RetranscodeParams)},
    **_RETRANSCODE,
)
async def retransocde(request: Request, ctx: Ctx, q: NamedDependency[RetranscodeParams]) -> Queued:
    """The specification's spelling of /video/retranscode."""
    return await _retranscode(request, ctx, q)


ROUTES = [transcode, retranscode, retransocde]
