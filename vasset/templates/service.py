"""Transcode templates: save, list, delete, and what template= makes of a call's options.

A template is a stored ``TranscodeOptions`` (its JSON, parsed back through the same struct), so
every option the struct gains works in templates without code here. A call's explicit options
replace the template's field by field (the watermark and the text each as a whole). Several
templates on one transcode (``template=a,b``) make several outputs: the first is the video
itself, each further one a new video that shares the source bytes (like an instant upload) and
has its own job, renditions and play URLs, so the one-live-job-per-video rule and playurl serve
them unchanged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vasset import errors
from vasset.db import run_transaction, transaction
from vasset.settings import Settings
from vasset.templates import repository as repo
from vasset.transcode.options import TranscodeOptions
from vasset.transcode.requests import checked_options
from vasset.videos import repository as videos
from vasset.videos.sharing import shared_source_columns
from vasset.videos.state import TRANSCODABLE

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)

#: Templates one app may keep.
MAX_TEMPLATES = 100
#: Templates one transcode call may name (each beyond the first makes a new video).
MAX_OUTPUTS = 8


def encode(options: TranscodeOptions) -> str:
    """The stored JSON of options (defaults left out)."""
    return msgspec.json.encode(options.to_params()).decode()


def decode(stored: str) -> TranscodeOptions:
    """Options back from their stored JSON, through the same struct."""
    return TranscodeOptions.from_params(json.loads(stored))


def merge(base: TranscodeOptions, explicit: TranscodeOptions) -> TranscodeOptions:
    """base with every field the call gave explicitly (not None) replaced by the call's."""
    given = {
        name: getattr(explicit, name)
        for name in TranscodeOptions.__struct_fields__
        if getattr(explicit, name) is not None
    }
    return msgspec.structs.replace(base, **given)


def split_names(template: str) -> list[str]:
    """The names of a template= value (comma list), in order, without repeats."""
    return list(dict.fromkeys(n.strip() for n in template.split(",") if n.strip()))


class TemplateService:
    """The app's templates (built per call: it holds only the engine and settings)."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def save(self, app_id: int, name: str, options: TranscodeOptions) -> dict:
        """Create or replace a template; answers it."""
        options = checked_options(msgspec.structs.replace(options, template=None), self._ladder)
        stored = encode(options)

        async def save(conn: AsyncConnection) -> repo.TemplateRow:
            known = await repo.get_template(conn, app_id, name, for_update=True)
            if known is None and await repo.count_templates(conn, app_id) >= MAX_TEMPLATES:
                raise errors.InvalidParameter(
                    f"an app keeps at most {MAX_TEMPLATES} templates; delete one first",
                    parameter="name",
                )
            await repo.save_template(conn, app_id, name, stored)
            row = await repo.get_template(conn, app_id, name)
            assert row is not None
            return row

        row = await run_transaction(self.engine, save)
        log.info("template_saved", app_id=app_id, template=name)
        return _answer(row)

    async def listing(self, app_id: int) -> dict:
        """The app's templates by name."""
        async with transaction(self.engine) as conn:
            rows = await repo.list_templates(conn, app_id)
        return {"templates": [_answer(r) for r in rows]}

    async def delete(self, app_id: int, name: str) -> dict:
        """Forget a template; jobs already queued with it keep their options."""
        async with transaction(self.engine) as conn:
            if not await repo.delete_template(conn, app_id, name):
                raise errors.UnknownTemplate(f"the app has no template {name!r}", template=name)
        log.info("template_deleted", app_id=app_id, template=name)
        return {"name": name, "deleted": True}

    async def resolve(
        self, app_id: int, template: str | None, explicit: TranscodeOptions
    ) -> TranscodeOptions:
        """The options of a call naming at most one template (explicit ones win)."""
        return (await self.resolve_many(app_id, template, explicit, limit=1))[0]

    async def resolve_many(
        self, app_id: int, template: str | None, explicit: TranscodeOptions, *, limit: int
    ) -> list[TranscodeOptions]:
        """One set of options per named template (explicit ones win), or the call's alone."""
        if not template:
            return [explicit]
        names = split_names(template)
        if not names:
            raise errors.InvalidParameter("template names no template", parameter="template")
        if len(names) > limit:
            where = "this call takes one" if limit == 1 else f"at most {limit}"
            raise errors.InvalidParameter(
                f"template names {len(names)} templates; {where}", parameter="template"
            )
        async with transaction(self.engine) as conn:
            rows = [await repo.get_template(conn, app_id, name) for name in names]
        out = []
        for name, row in zip(names, rows, strict=True):
            if row is None:
                raise errors.UnknownTemplate(f"the app has no template {name!r}", template=name)
            merged = merge(decode(row.options), explicit)
            out.append(msgspec.structs.replace(merged, template=name))
        return out

    @property
    def _ladder(self) -> str:
        return self.settings.ladder


def _answer(row: repo.TemplateRow) -> dict:
    return {
        "name": row.name,
        "options": decode(row.options).to_params(),
        "create_time": row.create_time,
        "update_time": row.update_time,
    }


# template= on uploads: the options ride with the video until its upload completes


async def record_for_video(conn: AsyncConnection, vid: int, options: str | None) -> None:
    """Keep the stored options (JSON) of a new video's automatic transcode, if any."""
    if options:
        await repo.set_video_options(conn, vid, options)


async def auto_outputs(conn: AsyncConnection, vid: int) -> list[dict | None]:
    """The job params of a completed upload's automatic transcodes (None: the defaults).

    One per template the upload named (the first is the video's own), at least one. The record
    is used up here, in the completion's transaction: the jobs keep the options. Records written
    before several templates existed hold one set of options, not a list.
    """
    stored = await repo.take_video_options(conn, vid)
    if not stored:
        return [None]
    loaded = json.loads(stored)
    items = loaded if isinstance(loaded, list) else [loaded]
    return [TranscodeOptions.from_params(item).to_params() for item in items]


async def add_output_video(
    conn: AsyncConnection, settings: Settings, app_id: int, vid: int, priority: int
) -> int:
    """A new video of app_id sharing vid's verified source bytes (one more template output)."""
    video = await videos.get_video(conn, vid, app_id)
    if video is None or not video.storage_uri or not video.hash:
        raise errors.InvalidState("the source of further outputs has no verified bytes")
    return await videos.insert_video(
        conn,
        app_id=app_id,
        source_name=video.source_name,
        task_priority=priority,
        image_count=video.image_count or settings.image_count,
        **shared_source_columns(video),
    )


# several templates on one transcode: several outputs


async def enqueue_outputs(
    conn: AsyncConnection,
    settings: Settings,
    app_id: int,
    vid: int,
    priority: int,
    jobs: list[dict | None],
) -> list[dict]:
    """Queue jobs[0] on vid and each further one on a new video sharing vid's verified bytes.

    Returns [{"template", "vid"}] in order (a job's params name its template, if any).
    """
    from vasset.transcode import queue

    made = []
    for n, params in enumerate(jobs):
        target = await add_output_video(conn, settings, app_id, vid, priority) if n else vid
        await queue.enqueue(
            conn, app_id, target, "transcode", priority, settings.job_max_attempts, params
        )
        made.append({"template": (params or {}).get("template"), "vid": target})
    return made


async def fan_out(
    ctx: Context, app_id: int, vid: int, priority: int | None, outputs: list[TranscodeOptions]
) -> list[dict]:
    """Queue outputs[0] on vid and each further one on a new video sharing vid's source bytes.

    Returns [{"template", "vid"}] in the order asked. All or nothing: one transaction.
    """
    s = ctx.settings
    params: list[dict | None] = [checked_options(o, s.ladder).to_params() for o in outputs]

    async def queue_all(conn: AsyncConnection) -> list[dict]:
        video = await videos.get_video(conn, vid, app_id, for_update=True)
        if video is None:
            raise errors.VideoNotFound()
        if video.status not in TRANSCODABLE or not video.storage_uri or not video.hash:
            raise errors.InvalidState(f"a video that is {video.status} cannot be transcoded")
        prio = video.task_priority if priority is None else priority
        return await enqueue_outputs(conn, s, app_id, vid, prio, params)

    made = await run_transaction(ctx.engine, queue_all)
    await ctx.wakeup.wake()
    log.info("template_outputs_queued", vid=vid, outputs=made)
    return made


async def queue_outputs(
    ctx: Context,
    app_id: int,
    vid: int,
    priority: int | None,
    template: str,
    explicit: TranscodeOptions,
) -> list[dict]:
    """template=a,b on a transcode of vid: resolve each, check overlays, queue them all."""
    from vasset.assets.service import check_overlays

    service = TemplateService(ctx.engine, ctx.settings)
    outputs = await service.resolve_many(app_id, template, explicit, limit=MAX_OUTPUTS)
    for options in outputs:
        await check_overlays(ctx, app_id, options)
    return await fan_out(ctx, app_id, vid, priority, outputs)


async def upload_options(ctx: Context, app_id: int, template: str | None, auto: bool) -> str | None:
    """template= of an upload init or ticket: the stored options of its automatic transcode.

    A list of options, one per template (``template=a,b``): each beyond the first is an output
    that becomes a new video when the upload completes.
    """
    if not template:
        return None
    if not auto:
        raise errors.InvalidParameter(
            "template applies to the automatic transcode: give auto=1 with it",
            parameter="template",
        )
    from vasset.assets.service import check_overlays

    service = TemplateService(ctx.engine, ctx.settings)
    outputs = await service.resolve_many(app_id, template, TranscodeOptions(), limit=MAX_OUTPUTS)
    for options in outputs:
        await check_overlays(ctx, app_id, options)
    checked = [checked_options(o, ctx.settings.ladder).to_params() for o in outputs]
    return msgspec.json.encode(checked).decode()
