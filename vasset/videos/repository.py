"""SQL for the video table; every read is scoped to its owning app."""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.videos.state import sources_allowed

VIDEO_COLUMNS = (
    "id, app_id, parent_id, unique_id, source_name, create_time, update_time, file_size,"
    " video_width, video_height, duration, hash, definition, storage_uri, status, image_index,"
    " image_count, task_priority, progress, error, media_info, format, deleted_at"
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
    status: str
    image_index: int
    image_count: int
    task_priority: int
    progress: int
    error: str | None
    media_info: str | None
    format: str | None
    deleted_at: int | None


def _video(row) -> VideoRow:
    return VideoRow(*row)


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


async def insert_video(conn: AsyncConnection, **values) -> int:
    """Insert a video row and return its id."""
    now = int(time.time())
    values.setdefault("create_time", now)
    values.setdefault("update_time", now)
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    result = await conn.execute(text(f"INSERT INTO video ({cols}) VALUES ({params})"), values)
    return int(result.lastrowid)


async def update_video(conn: AsyncConnection, vid: int, **values) -> None:
    """Set columns of one video."""
    values["update_time"] = int(time.time())
    sets = ", ".join(f"{k} = :{k}" for k in values)
    await conn.execute(text(f"UPDATE video SET {sets} WHERE id = :vid"), {**values, "vid": vid})


async def transition(conn: AsyncConnection, vid: int, target: str, **values) -> bool:
    """Move a video to target only from a status the state machine allows; True if it moved."""
    allowed = sources_allowed(target)
    values["update_time"] = int(time.time())
    sets = ", ".join(["status = :target", *(f"{k} = :{k}" for k in values)])
    stmt = text(
        f"UPDATE video SET {sets} WHERE id = :vid AND status IN :allowed AND deleted_at IS NULL"
    ).bindparams(bindparam("allowed", expanding=True))
    result = await conn.execute(stmt, {**values, "target": target, "vid": vid, "allowed": allowed})
    return result.rowcount == 1


async def find_instant_source(
    conn: AsyncConnection, app_id: int, md5: str, size: int
) -> VideoRow | None:
    """A live, server-verified source video of this app with the same MD5 and size."""
    row = (
        await conn.execute(
            text(
                f"SELECT {VIDEO_COLUMNS} FROM video WHERE app_id = :app AND hash = :h"
                " AND file_size = :s AND parent_id IS NULL AND deleted_at IS NULL"
                " AND storage_uri IS NOT NULL"
                " AND status NOT IN ('uploading', 'upload_failed') ORDER BY id LIMIT 1 FOR UPDATE"
            ),
            {"app": app_id, "h": md5, "s": size},
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
