"""Every query of the video_snapshot table: a video's snapshot rows, its cover, their swap."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.events import outbox
from vasset.events.types import EventType
from vasset.videos.repository import update_video


class SnapshotRow(msgspec.Struct):
    """One row of the video_snapshot table."""

    image_index: int
    time_ms: int
    storage_uri: str
    width: int | None
    height: int | None


async def snapshots(conn: AsyncConnection, vid: int) -> list[SnapshotRow]:
    """A video's snapshots in index order."""
    rows = await conn.execute(
        text(
            "SELECT image_index, time_ms, storage_uri, width, height FROM video_snapshot"
            " WHERE video_id = :v ORDER BY image_index"
        ),
        {"v": vid},
    )
    return [SnapshotRow(**r._mapping) for r in rows]


async def cover_key(conn: AsyncConnection, vid: int, image_index: int) -> str | None:
    """The key of the cover snapshot (image_index, else the first one), or None."""
    row = (
        await conn.execute(
            text(
                "SELECT storage_uri FROM video_snapshot WHERE video_id = :v"
                " ORDER BY image_index = :i DESC, image_index LIMIT 1"
            ),
            {"v": vid, "i": image_index},
        )
    ).first()
    return row.storage_uri if row else None


async def delete_snapshots(conn: AsyncConnection, vid: int) -> list[str]:
    """Delete a video's snapshot rows; returns their keys."""
    keys = [s.storage_uri for s in await snapshots(conn, vid)]
    await conn.execute(text("DELETE FROM video_snapshot WHERE video_id = :v"), {"v": vid})
    return keys


async def replace_snapshots(
    conn: AsyncConnection, vid: int, rows: list[tuple[int, int, str]], width: int, height: int
) -> None:
    """Swap a video's snapshots for (index, time_ms, key) rows and record their count."""
    await conn.execute(text("DELETE FROM video_snapshot WHERE video_id = :v"), {"v": vid})
    for index, at, key in rows:
        await conn.execute(
            text(
                "INSERT INTO video_snapshot (video_id, image_index, time_ms, width, height,"
                " storage_uri) VALUES (:v, :i, :t, :w, :h, :k)"
            ),
            {"v": vid, "i": index, "t": at, "w": width, "h": height, "k": key},
        )
    await update_video(conn, vid, image_count=len(rows))
    await outbox.emit(conn, vid, EventType.SNAPSHOTS_READY, count=len(rows))
