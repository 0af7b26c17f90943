"""HTTP routes of /video/transcode and /video/retranscode (and the spec's /video/retransocde)."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, post

from vasset import errors
from vasset.db import run_transaction
from vasset.http.auth import ctx_of, query_string, signed_app
from vasset.http.params import Id, Priority, parse_params
from vasset.http.responses import json_response
from vasset.transcode import importer, ladder, queue
from vasset.transcode.worker import notify
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

TRANSCODABLE = {
    VideoStatus.UPLOADED.value,
    VideoStatus.TRANSCODE_QUEUED.value,
    VideoStatus.TRANSCODING.value,
    VideoStatus.TRANSCODE_SUCCEEDED.value,
    VideoStatus.TRANSCODE_FAILED.value,
    VideoStatus.PLAYABLE.value,
}


class TranscodeParams(msgspec.Struct):
    """Query of POST /video/transcode."""

    vid: Id | None = None
    src: str | None = None
    dst: str | None = None
    priority: Priority | None = None
    definitions: str | None = None


class RetranscodeParams(msgspec.Struct):
    """Query of POST /video/retranscode."""

    vid: Id
    priority: Priority | None = None
    definitions: str | None = None


def _definitions(value: str | None, default: str) -> str | None:
    """Validate a comma list of definitions against the configured ladder."""
    if not value:
        return None
    try:
        wanted = ladder.parse_ladder(value)
        known = {r.name for r in ladder.parse_ladder(default)}
    except ValueError as exc:
        raise errors.InvalidParameter(str(exc), parameter="definitions") from None
    unknown = [r.name for r in wanted if r.name not in known]
    if unknown:
        raise errors.InvalidParameter(
            f"unknown definitions {unknown}; the ladder is {default}", parameter="definitions"
        )
    return ",".join(r.name for r in wanted)


async def _enqueue_existing(
    request: Request, vid: int, priority, definitions, kind: str
) -> Response:
    app = await signed_app(request)
    ctx = ctx_of(request)
    defs = _definitions(definitions, ctx.settings.ladder)

    async def enqueue(conn) -> None:
        video = await videos.get_video(conn, vid, app.id, for_update=True)
        if video is None or video.parent_id is not None:
            raise errors.VideoNotFound()
        if video.status not in TRANSCODABLE:
            raise errors.InvalidState(f"a video that is {video.status} cannot be transcoded")
        prio = video.task_priority if priority is None else priority
        params = {"definitions": defs} if defs else {}
        await queue.enqueue(conn, app.id, vid, kind, prio, ctx.settings.job_max_attempts, params)

    # Run again on a deadlock: a burst on one video must not answer 503 for a lock conflict.
    await run_transaction(ctx.engine, enqueue)
    await notify(ctx)
    return json_response({"vid": vid, "status": VideoStatus.TRANSCODE_QUEUED.value})


@post("/video/transcode", status_code=200)
async def transcode(request: Request) -> Response:
    """Queue a transcode of a video, or import a source URI as a new video."""
    p = parse_params(query_string(request), TranscodeParams)
    if p.vid is not None:
        return await _enqueue_existing(request, p.vid, p.priority, p.definitions, "transcode")
    if not p.src:
        raise errors.MissingParameter("missing required parameter: vid or src")
    app = await signed_app(request)
    ctx = ctx_of(request)
    s = ctx.settings
    await importer.check_source(ctx, app.id, p.src)
    defs = _definitions(p.definitions, s.ladder)
    name = p.src.rstrip("/").rsplit("/", 1)[-1][:200] or "import"
    priority = p.priority or 0

    async def create(conn) -> int:
        vid = await videos.insert_video(
            conn,
            app_id=app.id,
            source_name=name,
            status=VideoStatus.UPLOADING.value,
            task_priority=priority,
            image_count=s.image_count,
        )
        params = {"src": p.src, "dst": p.dst}
        if defs:
            params["definitions"] = defs
        await queue.enqueue(conn, app.id, vid, "import", priority, s.job_max_attempts, params)
        return vid

    vid = await run_transaction(ctx.engine, create)
    await notify(ctx)
    return json_response({"vid": vid, "status": VideoStatus.TRANSCODE_QUEUED.value})


@post("/video/retranscode", status_code=200)
async def retranscode(request: Request) -> Response:
    """Re-run the ladder; the new renditions replace the old ones atomically when done."""
    p = parse_params(query_string(request), RetranscodeParams)
    return await _enqueue_existing(request, p.vid, p.priority, p.definitions, "retranscode")


@post("/video/retransocde", status_code=200)
async def retransocde(request: Request) -> Response:
    """The specification's spelling of /video/retranscode."""
    return await retranscode.fn(request)


ROUTES = [transcode, retranscode, retransocde]
