"""Every query of the template family (transcode_template, video_transcode_options).

Rows are mapped by column name. Options are stored as the JSON of TranscodeOptions and parsed
back by the service through the same struct.
"""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "name, options, create_time, update_time"


class TemplateRow(msgspec.Struct):
    """One template of an app."""

    name: str
    options: str
    create_time: int
    update_time: int


async def save_template(conn: AsyncConnection, app_id: int, name: str, options: str) -> None:
    """Create the template, or replace its options (create_time kept)."""
    now = int(time.time())
    await conn.execute(
        text(
            "INSERT INTO transcode_template (app_id, name, options, create_time, update_time)"
            " VALUES (:app, :name, :options, :now, :now)"
            " ON DUPLICATE KEY UPDATE options = VALUES(options), update_time = VALUES(update_time)"
        ),
        {"app": app_id, "name": name, "options": options, "now": now},
    )


async def get_template(
    conn: AsyncConnection, app_id: int, name: str, *, for_update: bool = False
) -> TemplateRow | None:
    """The app's template of that name, or None."""
    sql = f"SELECT {_COLUMNS} FROM transcode_template WHERE app_id = :app AND name = :name"
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"app": app_id, "name": name})).first()
    return TemplateRow(**dict(row._mapping)) if row else None


async def list_templates(conn: AsyncConnection, app_id: int) -> list[TemplateRow]:
    """The app's templates by name."""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM transcode_template WHERE app_id = :app ORDER BY name"),
        {"app": app_id},
    )
    return [TemplateRow(**dict(r._mapping)) for r in rows]


async def count_templates(conn: AsyncConnection, app_id: int) -> int:
    """How many templates the app has."""
    row = (
        await conn.execute(
            text("SELECT COUNT(*) AS n FROM transcode_template WHERE app_id = :app"),
            {"app": app_id},
        )
    ).first()
    return int(row.n) if row else 0


async def delete_template(conn: AsyncConnection, app_id: int, name: str) -> bool:
    """Remove the app's template; False when it had none of that name."""
    result = await conn.execute(
        text("DELETE FROM transcode_template WHERE app_id = :app AND name = :name"),
        {"app": app_id, "name": name},
    )
    return result.rowcount == 1


async def set_video_options(conn: AsyncConnection, vid: int, options: str) -> None:
    """Record the options of a video's automatic transcode (an upload that named a template)."""
    await conn.execute(
        text(
            "INSERT INTO video_transcode_options (video_id, options, create_time)"
            " VALUES (:vid, :options, :now)"
            " ON DUPLICATE KEY UPDATE options = VALUES(options)"
        ),
        {"vid": vid, "options": options, "now": int(time.time())},
    )


async def take_video_options(conn: AsyncConnection, vid: int) -> str | None:
    """The options recorded for a video's automatic transcode (then forgotten), or None."""
    row = (
        await conn.execute(
            text("SELECT options FROM video_transcode_options WHERE video_id = :vid FOR UPDATE"),
            {"vid": vid},
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        text("DELETE FROM video_transcode_options WHERE video_id = :vid"), {"vid": vid}
    )
    return str(row.options)


async def drop_stale_video_options(conn: AsyncConnection, older_than: int) -> int:
    """Forget recorded options whose upload ended without completing (or whose video is gone).

    A completing upload takes its row in its own transaction, so a row whose video is no longer
    uploading was never taken; older_than (seconds) leaves young rows alone all the same.
    """
    result = await conn.execute(
        text(
            "DELETE o FROM video_transcode_options o LEFT JOIN video v ON v.id = o.video_id"
            " WHERE o.create_time < :cutoff"
            " AND (v.id IS NULL OR v.status <> 'uploading' OR v.deleted_at IS NOT NULL)"
        ),
        {"cutoff": int(time.time()) - older_than},
    )
    return result.rowcount
