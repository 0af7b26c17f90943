"""The video table's queries (video_snapshot's are in snapshot_repository); only they run them.

Reads by a caller's app are scoped to that app; rows are mapped by column name; a status
changes only through ``move_video`` (checked against videos.state, guarded on the old status).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.apps import repository as apps
from vasset.events import outbox
from vasset.events.types import EventType
from vasset.lifecycle import LostRace, Transition, record
from vasset.videos.state import VIDEO, VideoStatus

VIDEO_COLUMNS = (
    "id, app_id, parent_id, unique_id, source_name, create_time, update_time, file_size,"
    " video_width, video_height, duration, hash, definition, storage_uri, status, image_index,"
    " image_count, task_priority, progress, error, media_info, format, deleted_at, metadata,"
    " delete_at, playback_policy, public_token"
)


class VideoRow(msgspec.Struct):
    """One row of the video table."""

    id: int
    app_id: int
    parent_id: int | None
    unique_id: int | None
    source_name: str
    create_time: int
    update_time: int
    file_size: int
    video_width: int | None
    video_height: int | None
    duration: int | None
    hash: str | None
    definition: str | None
    storage_uri: str | None
    status: VideoStatus
    image_index: int
    image_count: int
    task_priority: int
    progress: int
    error: str | None
    media_info: str | None
    format: str | None
    deleted_at: int | None
    metadata: str | None = None
    #: When the janitor deletes it (unix seconds; a ttl on creation or the app's default).
    delete_at: int | None = None
    #: signed (expiring signed URLs) or public (stable URLs under /pub/{public_token}/).
    playback_policy: str = "signed"
    public_token: str | None = None


class VideoListRow(msgspec.Struct):
    """A top-level video as the list calls show it."""

    id: int
    source_name: str
    status: str
    progress: int
    duration: int | None
    file_size: int
    create_time: int
    playable: bool


def _video(row: Row) -> VideoRow:
    values = dict(row._mapping)
    values["status"] = VideoStatus(values["status"])
    return VideoRow(**values)


# reads
async def get_video(
    conn: AsyncConnection, vid: int, app_id: int | None = None, for_update: bool = False
) -> VideoRow | None:
    """A live video by id, or None; with app_id, only a top-level video (a vid) of that app."""
    sql = f"SELECT {VIDEO_COLUMNS} FROM video WHERE id = :id AND deleted_at IS NULL"
    params: dict = {"id": vid}
    if app_id is not None:
        # Rendition rows are never handed out as vids: a caller naming one gets VideoNotFound.
        sql += " AND app_id = :app AND parent_id IS NULL"
        params["app"] = app_id
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), params)).first()
    return _video(row) if row else None


async def app_of_video(conn: AsyncConnection, vid: int) -> int | None:
    """The app of any video row (deleted or not, a rendition too), or None."""
    row = (await conn.execute(text("SELECT app_id FROM video WHERE id = :v"), {"v": vid})).first()
    return int(row.app_id) if row else None


async def expired_videos(conn: AsyncConnection, now: int, limit: int) -> list[tuple[int, int]]:
    """(app_id, vid) of live top-level videos whose delete_at has passed, oldest first."""
    rows = await conn.execute(
        text(
            "SELECT app_id, id FROM video WHERE deleted_at IS NULL AND delete_at <= :now"
            " AND parent_id IS NULL ORDER BY delete_at LIMIT :n"
        ),
        {"now": now, "n": limit},
    )
    return [(int(r.app_id), int(r.id)) for r in rows]


async def lock_video(conn: AsyncConnection, vid: int, skip_locked: bool = False) -> bool:
    """Lock a video's row (deleted or not); False if it is missing or, with skip_locked, held.

    Lock order: the video row, then its upload and jobs. The API (enqueue, delete) locks the
    video first; a transaction that took a job first and then the video would deadlock against
    it (MySQL 1213), so every one that touches both starts here.
    """
    sql = "SELECT id FROM video WHERE id = :v FOR UPDATE"
    if skip_locked:
        sql += " SKIP LOCKED"
    return (await conn.execute(text(sql), {"v": vid})).first() is not None


async def find_instant_source(
    conn: AsyncConnection, app_id: int, md5: str, size: int
) -> VideoRow | None:
    """A live, server-verified source video of this app with the same MD5 and size."""
    row = (
        await conn.execute(
            text(
                f"SELECT {VIDEO_COLUMNS} FROM video WHERE app_id = :app AND hash = :h"
                " AND file_size = :s AND parent_id IS NULL AND deleted_at IS NULL"
                " AND storage_uri IS NOT NULL AND status NOT IN :unverified"
                " ORDER BY id LIMIT 1 FOR UPDATE"
            ).bindparams(bindparam("unverified", expanding=True)),
            {
                "app": app_id,
                "h": md5,
                "s": size,
                "unverified": [VideoStatus.UPLOADING.value, VideoStatus.UPLOAD_FAILED.value],
            },
        )
    ).first()
    return _video(row) if row else None


async def live_references(conn: AsyncConnection, storage_uri: str) -> int:
    """How many live videos still point at the stored object."""
    count: int = (
        await conn.execute(
            text("SELECT COUNT(*) FROM video WHERE storage_uri = :k AND deleted_at IS NULL"),
            {"k": storage_uri},
        )
    ).scalar_one()
    return int(count)


async def children(conn: AsyncConnection, vid: int) -> list[VideoRow]:
    """Live rendition rows of a source video."""
    rows = await conn.execute(
        text(
            f"SELECT {VIDEO_COLUMNS} FROM video WHERE parent_id = :vid AND deleted_at IS NULL"
            " ORDER BY video_height, id"
        ),
        {"vid": vid},
    )
    return [_video(r) for r in rows]


_LIST_SQL = (
    "SELECT v.id, v.source_name, v.status, v.progress, v.duration, v.file_size, v.create_time,"
    " EXISTS (SELECT 1 FROM video r WHERE r.parent_id = v.id AND r.deleted_at IS NULL"
    "  AND r.status = 'playable') AS playable"
    " FROM video v WHERE v.app_id = :app AND v.parent_id IS NULL AND v.deleted_at IS NULL"
    " {status} {cursor} ORDER BY v.id DESC LIMIT :limit"
)


async def list_videos(
    conn: AsyncConnection,
    app_id: int,
    limit: int,
    status: str | None = None,
    before: int | None = None,
) -> list[VideoListRow]:
    """Up to limit top-level live videos of an app, newest first, optionally below a vid."""
    params: dict = {"app": app_id, "limit": limit}
    clauses = {"status": "", "cursor": ""}
    if status is not None:
        clauses["status"] = "AND v.status = :status"
        params["status"] = status
    if before is not None:
        clauses["cursor"] = "AND v.id < :before"
        params["before"] = before
    rows = await conn.execute(text(_LIST_SQL.format(**clauses)), params)
    return [
        VideoListRow(**{**r._mapping, "playable": bool(r.playable), "progress": int(r.progress)})
        for r in rows
    ]


# writes
async def insert_video(conn: AsyncConnection, **values: Any) -> int:
    """Insert a video row (its first status included) and return its id.

    A top-level video's ``ttl`` (seconds, else its app's default) sets when the janitor
    deletes it, counted from its creation.
    """
    now = int(time.time())
    values.setdefault("create_time", now)
    values.setdefault("update_time", now)
    ttl = values.pop("ttl", None)
    if not values.get("parent_id"):
        ttl = ttl or await apps.default_ttl(conn, int(values["app_id"]))
        values["delete_at"] = int(values["create_time"]) + ttl if ttl else None
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    result = await conn.execute(text(f"INSERT INTO video ({cols}) VALUES ({params})"), values)
    vid = int(result.lastrowid)
    status = str(values.get("status", ""))
    if values.get("parent_id"):
        if status == VideoStatus.PLAYABLE.value:
            await outbox.emit(
                conn,
                int(values["parent_id"]),
                EventType.RENDITION_READY,
                definition=values.get("definition"),
                format=values.get("format"),
            )
    else:
        facts = {"md5": values["hash"]} if values.get("hash") else {}
        if values.get("file_size"):
            facts["size"] = values["file_size"]
        await outbox.on_video_created(conn, vid, status, **facts)
    return vid


async def update_video(conn: AsyncConnection, vid: int, **values: Any) -> None:
    """Set columns of one video other than its status (that is move_video's)."""
    if "status" in values:
        raise ValueError("a video's status changes only through move_video")
    values["update_time"] = int(time.time())
    sets = ", ".join(f"{k} = :{k}" for k in values)
    await conn.execute(text(f"UPDATE video SET {sets} WHERE id = :vid"), {**values, "vid": vid})


async def move_video(
    conn: AsyncConnection,
    vid: int,
    source: VideoStatus | Iterable[VideoStatus],
    target: VideoStatus,
    **payload: Any,
) -> Transition:
    """Move a live video from source (one status or several) to target, setting payload.

    IllegalTransition if the lifecycle has no such move; LostRace if the row is no longer in
    a source status (or was deleted). Runs in the caller's transaction.
    """
    sources = VIDEO.check(source, target)
    old = sources[0]
    if len(sources) > 1:
        found = await _status(conn, vid, lock=True)
        if found not in sources:
            raise LostRace("video", vid, sources, target, found)
        old = VideoStatus(found)
    sets = ", ".join(["status = :target", "update_time = :now", *(f"{k} = :{k}" for k in payload)])
    result = await conn.execute(
        text(f"UPDATE video SET {sets} WHERE id = :vid AND status = :old AND deleted_at IS NULL"),
        {**payload, "target": target.value, "now": int(time.time()), "vid": vid, "old": old.value},
    )
    if result.rowcount != 1:
        raise LostRace("video", vid, sources, target, await _status(conn, vid))
    return await record(conn, Transition("video", vid, old.value, target.value, payload))


async def _status(conn: AsyncConnection, vid: int, lock: bool = False) -> str | None:
    """The status of a live video, or None."""
    sql = "SELECT status FROM video WHERE id = :v AND deleted_at IS NULL"
    row = (await conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"v": vid})).first()
    return row.status if row else None


async def set_progress(conn: AsyncConnection, vid: int, progress: int) -> None:
    """Record transcode progress while the video is transcoding (not a status move)."""
    result = await conn.execute(
        text("UPDATE video SET progress = :p WHERE id = :v AND status = :s"),
        {"p": progress, "v": vid, "s": VideoStatus.TRANSCODING.value},
    )
    if result.rowcount == 1:
        await outbox.on_progress(conn, vid, progress)


async def mark_deleted(conn: AsyncConnection, vid: int) -> None:
    """Hide a video and its renditions (their bytes go later)."""
    await outbox.emit(conn, vid, EventType.DELETED, status="deleted")
    now = int(time.time())
    await conn.execute(
        text("UPDATE video SET deleted_at = :t, update_time = :t WHERE id = :v OR parent_id = :v"),
        {"t": now, "v": vid},
    )


async def retire_renditions(conn: AsyncConnection, vid: int) -> None:
    """Hide a video's current renditions (same transaction as the new ones)."""
    await conn.execute(
        text("UPDATE video SET deleted_at = :t WHERE parent_id = :v AND deleted_at IS NULL"),
        {"t": int(time.time()), "v": vid},
    )


async def output_keys(conn: AsyncConnection, vid: int) -> list[str]:
    """Keys of a video's live renditions and snapshots."""
    rows = await conn.execute(
        text(
            "SELECT storage_uri FROM video WHERE parent_id = :v AND deleted_at IS NULL"
            " UNION ALL SELECT storage_uri FROM video_snapshot WHERE video_id = :v"
        ),
        {"v": vid},
    )
    return [r.storage_uri for r in rows if r.storage_uri]


async def unreferenced_sources(conn: AsyncConnection, limit: int = 500) -> list[str]:
    """Source keys of deleted videos that no live video points at any more."""
    rows = await conn.execute(
        text(
            "SELECT DISTINCT d.storage_uri FROM video d WHERE d.deleted_at IS NOT NULL"
            " AND d.storage_uri IS NOT NULL AND d.parent_id IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM video l WHERE l.storage_uri = d.storage_uri"
            " AND l.deleted_at IS NULL) LIMIT :lim"
        ),
        {"lim": limit},
    )
    return [r.storage_uri for r in rows]


async def forget_source(conn: AsyncConnection, key: str) -> None:
    """Drop a removed object's key from the deleted videos that pointed at it."""
    await conn.execute(
        text(
            "UPDATE video SET storage_uri = NULL WHERE storage_uri = :k AND deleted_at IS NOT NULL"
        ),
        {"k": key},
    )


async def set_metadata(conn: AsyncConnection, vid: int, metadata: str | None) -> None:
    """Keep the client's metadata (a JSON object of strings) with the video."""
    await conn.execute(
        text("UPDATE video SET metadata = :m WHERE id = :v"), {"m": metadata, "v": vid}
    )
