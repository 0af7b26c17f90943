"""HTTP routes of /video/templates: create or replace, list, delete (signed)."""

from __future__ import annotations

from litestar import get, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.assets.service import check_overlays
from vasset.context import Context
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped
from vasset.templates.schemas import (
    NameParams,
    Template,
    TemplateDeleted,
    TemplateList,
    TemplateParams,
)
from vasset.templates.service import TemplateService

TAG = "transcode"
_TEMPLATE = {
    "name": "ad-hevc",
    "options": {"definitions": "360p,720p", "codec": "hevc"},
    "create_time": 1700000000,
    "update_time": 1700000000,
}


def templates(ctx: Context) -> TemplateService:
    """The template service of this process's context."""
    return TemplateService(ctx.engine, ctx.settings)


@post(
    "/video/templates",
    status_code=200,
    dependencies={"q": query(TemplateParams, signed=True)},
    **doc(
        tag=TAG,
        query=TemplateParams,
        codes=(errors.InvalidParameter, errors.AssetNotFound),
        example=_TEMPLATE,
    ),
)
async def template_save(ctx: Ctx, caller: Caller, q: NamedDependency[TemplateParams]) -> Template:
    """Create or replace a named transcode template of the app; answers it."""
    options = q.options()
    await check_overlays(ctx, caller.id, options)
    return shaped(await templates(ctx).save(caller.id, q.name, options), Template)


@get("/video/templates", **doc(tag=TAG, example={"templates": [_TEMPLATE]}))
async def template_list(ctx: Ctx, caller: Caller) -> TemplateList:
    """The app's transcode templates by name."""
    return shaped(await templates(ctx).listing(caller.id), TemplateList)


@post(
    "/video/templates/delete",
    status_code=200,
    dependencies={"q": query(NameParams, signed=True)},
    **doc(
        tag=TAG,
        query=NameParams,
        codes=(errors.UnknownTemplate,),
        example={"name": "ad-hevc", "deleted": True},
    ),
)
async def template_delete(
    ctx: Ctx, caller: Caller, q: NamedDependency[NameParams]
) -> TemplateDeleted:
    """Delete a template; jobs already queued with it keep their options."""
    return shaped(await templates(ctx).delete(caller.id, q.name), TemplateDeleted)


ROUTES = [template_save, template_list, template_delete]
