"""Every query of video_caption; only this module runs them. Rows are mapped by column name."""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "lang, label, storage_uri, size, cue_count, update_time"


class CaptionRow(msgspec.Struct, frozen=True):
    """One caption file of a video."""

    lang: str
    label: str
    storage_uri: str
    size: int
    cue_count: int
    update_time: int


class HlsCaptions(msgspec.Struct, frozen=True):
    """What an HLS master of a video needs: its duration and its captions."""

    duration: int | None
    captions: list[CaptionRow]


async def captions_of(conn: AsyncConnection, vid: int) -> list[CaptionRow]:
    """A video's captions, by language."""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM video_caption WHERE video_id = :v ORDER BY lang"),
        {"v": vid},
    )
    return [CaptionRow(**r._mapping) for r in rows]


async def get_caption(
    conn: AsyncConnection, vid: int, lang: str, for_update: bool = False
) -> CaptionRow | None:
    """One language's captions of a video, or None."""
    sql = f"SELECT {_COLUMNS} FROM video_caption WHERE video_id = :v AND lang = :l"
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"v": vid, "l": lang})).first()
    return CaptionRow(**row._mapping) if row else None


async def hls_captions(conn: AsyncConnection, vid: int) -> HlsCaptions | None:
    """Duration and captions of a live video (any app: the caller holds a signed URL), or None."""
    row = (
        await conn.execute(
            text("SELECT duration FROM video WHERE id = :v AND deleted_at IS NULL"), {"v": vid}
        )
    ).first()
    if row is None:
        return None
    return HlsCaptions(duration=row.duration, captions=await captions_of(conn, vid))


async def put_caption(
    conn: AsyncConnection, vid: int, lang: str, label: str, key: str, size: int, cues: int
) -> None:
    """Insert or replace one language's captions (callers hold the video row's lock)."""
    now = int(time.time())
    await conn.execute(
        text(
            "INSERT INTO video_caption (video_id, lang, label, storage_uri, size, cue_count,"
            " create_time, update_time) VALUES (:v, :l, :label, :k, :s, :c, :t, :t)"
            " ON DUPLICATE KEY UPDATE label = VALUES(label), storage_uri = VALUES(storage_uri),"
            " size = VALUES(size), cue_count = VALUES(cue_count),"
            " update_time = VALUES(update_time)"
        ),
        {"v": vid, "l": lang, "label": label, "k": key, "s": size, "c": cues, "t": now},
    )


async def delete_caption(conn: AsyncConnection, vid: int, lang: str) -> None:
    """Remove one language's row."""
    await conn.execute(
        text("DELETE FROM video_caption WHERE video_id = :v AND lang = :l"), {"v": vid, "l": lang}
    )


async def delete_keys(conn: AsyncConnection, vid: int, keys: list[str]) -> None:
    """Remove the rows of a video that point at keys (their objects are gone)."""
    for key in keys:
        await conn.execute(
            text("DELETE FROM video_caption WHERE video_id = :v AND storage_uri = :k"),
            {"v": vid, "k": key},
        )


async def orphaned(conn: AsyncConnection, limit: int = 500) -> list[tuple[int, str]]:
    """(vid, key) of captions whose video is deleted (removed with it; left over on a failure)."""
    rows = await conn.execute(
        text(
            "SELECT c.video_id, c.storage_uri FROM video_caption c JOIN video v"
            " ON v.id = c.video_id WHERE v.deleted_at IS NOT NULL LIMIT :n"
        ),
        {"n": limit},
    )
    return [(int(r.video_id), r.storage_uri) for r in rows]
