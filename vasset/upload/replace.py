"""Replace the source, keep the vid: ``/video/upload/init ... &replace=VID``.

The new source uploads as an ordinary upload whose video is the kept vid, while the video, its
status and its renditions stay as they are (players keep the old set). Completing the upload
queues a transcode of the new source; that job's publish swaps the renditions (as a
retranscode does) and, in the same transaction, makes the new source the video's source; the
old source object is deleted after that commit. If the upload expires or fails verification,
or the transcode fails for good, the replacement is dropped and the video keeps its old source
and renditions. One replacement per video at a time, and only of a video at rest.

The replacement's own lifecycle: uploading -> ready (upload complete) -> gone (published) or
abandoned (transcode failed for good) -> gone (its object deleted); uploading -> gone (expired
or failed). ``gone`` is the row's deletion.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.auth.verify import App, new_upload_token
from vasset.db import transaction
from vasset.lifecycle import Machine
from vasset.metrics.registry import metrics
from vasset.storage import keys
from vasset.upload import replacement_repository as repl
from vasset.upload import repository as uploads
from vasset.upload.answers import init_answer
from vasset.upload.names import decode_file_name
from vasset.upload.repository import UploadRow
from vasset.upload.state import UploadStatus
from vasset.upload.unfinished import drop_unfinished
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context
    from vasset.upload.schemas import InitParams
    from vasset.upload.service import UploadService

log = structlog.get_logger(__name__)
V = VideoStatus
U = UploadStatus


class Replacement(StrEnum):
    """source_replacement.state, and GONE for the row's deletion."""

    UPLOADING = "uploading"
    READY = "ready"
    ABANDONED = "abandoned"
    GONE = "gone"


R = Replacement
REPLACEMENT = Machine(
    "replacement",
    {
        R.UPLOADING: frozenset({R.READY, R.GONE}),
        R.READY: frozenset({R.GONE, R.ABANDONED}),
        R.ABANDONED: frozenset({R.GONE}),
        R.GONE: frozenset(),
    },
)
#: A video's source may be replaced only at rest: no upload or transcode of it under way.
REPLACEABLE = frozenset({V.UPLOADED, V.TRANSCODE_FAILED, V.PLAYABLE})


async def _move(
    conn: AsyncConnection, vid: int, source: Replacement, target: Replacement, **v: Any
) -> None:
    REPLACEMENT.check(source, target)
    if target is R.GONE:
        await repl.delete(conn, vid)
    elif not await repl.update(conn, vid, target.value, source.value, **v):
        raise errors.InvalidState(f"the replacement of video {vid} is no longer {source}")


async def start(svc: UploadService, app: App, vid: int, q: InitParams, md5: str | None) -> dict:
    """Start the upload of a new source for one of the app's videos (never instant).

    md5: q.hash, already checked by the caller. The replacement always goes on to a
    transcode (with the options recorded with the video); it keeps the video's ttl, policy
    and template, so direct, ttl, playback_policy and template are refused with it.
    """
    given = [n for n in ("direct", "ttl", "playback_policy", "template") if getattr(q, n)]
    if given:
        raise errors.InvalidParameter(
            f"replace= cannot be combined with {', '.join(given)}", parameter="replace"
        )
    fn, fsize, psize, priority = q.fn, q.fsize, q.psize, q.priority
    decode_file_name(fn)  # checked like any upload's; the video keeps its name
    part_count = svc.check_sizes(fsize, psize)
    await _drop_abandoned(svc.engine, svc.store, vid)
    now = int(time.time())
    token, token_hash = new_upload_token()
    upload_id = keys.new_nonce() + keys.new_nonce()
    expires_at = now + svc.settings.upload_ttl
    key, multipart_id = keys.source_key(app.id, vid, keys.new_nonce()), None
    try:
        async with transaction(svc.engine) as conn:
            video = await videos.get_video(conn, vid, app.id, for_update=True)
            if video is None:
                raise errors.VideoNotFound(parameter="replace")
            if video.status not in REPLACEABLE:
                raise errors.InvalidState(
                    f"a video that is {video.status} cannot have its source replaced",
                    parameter="replace",
                )
            if await repl.get(conn, vid, for_update=True) is not None:
                raise errors.InvalidState(
                    "a replacement of this video's source is already under way",
                    parameter="replace",
                )
            multipart_id = await svc.store.create_multipart(key)
            await uploads.insert_upload(
                conn,
                upload_id=upload_id,
                token_hash=token_hash,
                app_id=app.id,
                video_id=vid,
                file_size=fsize,
                part_size=psize,
                part_count=part_count,
                client_md5=md5,
                storage_key=key,
                multipart_id=multipart_id,
                direct=0,
                auto_transcode=1,  # a replacement always goes on to its transcode
                task_priority=priority,
                expires_at=expires_at,
            )
            row = await uploads.get_upload(conn, upload_id)
            assert row is not None
            await repl.insert(conn, video_id=vid, app_id=app.id, upload_pk=row.id, storage_key=key)
    except BaseException:
        if multipart_id is not None:
            await asyncio.shield(svc.store.abort_multipart(key, multipart_id))
        raise
    log.info("replacement_started", upload_id=upload_id, vid=vid, size=fsize, parts=part_count)
    return init_answer(
        upload_id=upload_id,
        vid=vid,
        size=fsize,
        md5=md5,
        part_size=psize,
        part_count=part_count,
        expires_at=expires_at,
        upload_token=token,
    )


async def _drop_abandoned(engine: Any, store: Any, vid: int) -> None:
    """Delete a failed replacement's object and row (left by a transcode that failed)."""
    async with transaction(engine) as conn:
        row = await repl.get(conn, vid)
    if row is None or row.state != R.ABANDONED:
        return
    await store.delete(row.storage_key)
    async with transaction(engine) as conn:
        await _move(conn, vid, R.ABANDONED, R.GONE)
    log.info("replacement_dropped", vid=vid, key=row.storage_key)


async def completed(engine: Any, row: UploadRow, md5: str, enqueue: Any) -> bool:
    """A replacement's upload is verified: queue its transcode; False if row is no replacement.

    The video stays as it is (old renditions playing); enqueue (the auto-transcode hook) queues
    the transcode of the new source, superseding any job of the video.
    """
    async with transaction(engine) as conn:
        # The video first, then its upload and replacement: the lock order of a delete.
        video = await videos.get_video(conn, row.video_id, for_update=True)
        found = await repl.of_upload(conn, row.id)
        if found is None:
            return False
        if video is None:
            raise errors.UploadAborted("the video was deleted", vid=row.video_id)
        await uploads.move_upload(
            conn, row.id, U.COMPLETING, U.UPLOADED, client_md5=md5, md5_state=None
        )
        await _move(conn, row.video_id, R.UPLOADING, R.READY, file_size=row.file_size, hash=md5)
        await enqueue(conn, row.app_id, row.video_id, row.task_priority)
    log.info("replacement_uploaded", upload_id=row.upload_id, vid=row.video_id, md5=md5)
    metrics().uploads_completed.inc()
    return True


async def ended(conn: AsyncConnection, row: UploadRow) -> bool:
    """In an expiry's or failed completion's transaction: drop the replacement; False if none.

    The video is not touched: it keeps its old source and renditions.
    """
    found = await repl.of_upload(conn, row.id)
    if found is None:
        return False
    await _move(conn, row.video_id, R.UPLOADING, R.GONE)
    log.info("replacement_ended", upload_id=row.upload_id, vid=row.video_id)
    return True


async def source_of(conn: AsyncConnection, run: Any, video: Any) -> str | None:
    """The source a job transcodes: a ready replacement's (remembered on run), else the video's."""
    if video is None:
        return None
    found = await repl.get(conn, video.id)
    if found is not None and found.state == R.READY:
        run.replacing = found
        return found.storage_key
    run.replacing = None
    return video.storage_uri


async def adopt(conn: AsyncConnection, run: Any, video: Any) -> None:
    """In the publish transaction: the job's new source becomes the video's source."""
    used = getattr(run, "replacing", None)
    if used is None:
        return
    current = await repl.get(conn, video.id, for_update=True)
    if current is None or current.storage_key != used.storage_key:
        raise errors.InvalidState("the replacement this job transcoded is gone")
    await videos.update_video(
        conn, video.id, storage_uri=used.storage_key, hash=current.hash, file_size=current.file_size
    )
    await _move(conn, video.id, R.READY, R.GONE)
    run.old_source = video.storage_uri


async def drop_old_source(ctx: Context, run: Any) -> None:
    """After the publish committed: delete the replaced source unless a live video shares it."""
    old = getattr(run, "old_source", None)
    if not old:
        return
    async with transaction(ctx.engine) as conn:
        shared = await repl.source_in_use(conn, old)
    if not shared:
        await ctx.store.delete(old)
    log.info("source_replaced", vid=run.job.video_id, old=old, deleted=not shared)


async def abandon(conn: AsyncConnection, vid: int) -> None:
    """In the failing transaction: a ready replacement whose transcode failed for good."""
    found = await repl.get(conn, vid, for_update=True)
    if found is not None and found.state == R.READY:
        await _move(conn, vid, R.READY, R.ABANDONED)


class Dropped(NamedTuple):
    """A deleted video's replacement whose bytes go once the delete has committed."""

    key: str
    multipart_id: str | None  # an upload still in progress: abort it instead


async def drop_with_video(
    conn: AsyncConnection, vid: int, upload: UploadRow | None
) -> Dropped | None:
    """In a video delete's transaction: forget its pending replacement, if any.

    upload: the video's open upload the delete aborts (a replacement's, while it uploads).
    """
    found = await repl.get(conn, vid, for_update=True)
    if found is None:
        return None
    await _move(conn, vid, Replacement(found.state), R.GONE)
    ours = upload is not None and upload.storage_key == found.storage_key
    return Dropped(found.storage_key, upload.multipart_id if ours and upload else None)


async def remove_dropped(engine: Any, store: Any, dropped: Dropped) -> None:
    """After the delete committed: the replacement's multipart upload or object."""
    if dropped.multipart_id:
        await drop_unfinished(store, dropped.key, dropped.multipart_id)
    async with transaction(engine) as conn:
        shared = await repl.source_in_use(conn, dropped.key)
    if not shared:
        await store.delete(dropped.key)
    log.info("replacement_dropped_with_video", key=dropped.key)


async def sweep_abandoned(ctx: Context) -> int:
    """Janitor: the bytes of replacements failed by the reaper (the worker discards its own)."""
    async with transaction(ctx.engine) as conn:
        vids = await repl.abandoned_vids(conn)
    for vid in vids:
        await _drop_abandoned(ctx.engine, ctx.store, vid)
    return len(vids)


async def discard(ctx: Context, vid: int) -> None:
    """After a final failure: delete an abandoned replacement's object and row."""
    await _drop_abandoned(ctx.engine, ctx.store, vid)
