"""SQL of the source_replacement table (init ... &replace=VID); rows mapped by column name."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "video_id, app_id, upload_pk, storage_key, state, file_size, hash"


class ReplacementRow(msgspec.Struct):
    """One row of source_replacement."""

    video_id: int
    app_id: int
    upload_pk: int
    storage_key: str
    state: str
    file_size: int
    hash: str | None


def _row(row: Any) -> ReplacementRow:
    return ReplacementRow(**{k: getattr(row, k) for k in ReplacementRow.__struct_fields__})


async def get(conn: AsyncConnection, vid: int, for_update: bool = False) -> ReplacementRow | None:
    """The replacement of a video, if any."""
    sql = f"SELECT {_COLUMNS} FROM source_replacement WHERE video_id = :v"
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"v": vid})).first()
    return _row(row) if row else None


async def of_upload(conn: AsyncConnection, upload_pk: int) -> ReplacementRow | None:
    """The replacement an upload row uploads, if it is one."""
    sql = f"SELECT {_COLUMNS} FROM source_replacement WHERE upload_pk = :u FOR UPDATE"
    row = (await conn.execute(text(sql), {"u": upload_pk})).first()
    return _row(row) if row else None


async def insert(conn: AsyncConnection, **values: Any) -> None:
    """Record a replacement (state uploading)."""
    now = int(time.time())
    values.update(create_time=now, update_time=now, state="uploading")
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    await conn.execute(text(f"INSERT INTO source_replacement ({cols}) VALUES ({params})"), values)


async def update(conn: AsyncConnection, vid: int, state: str, expect: str, **values: Any) -> bool:
    """Move a replacement from expect to state (with values); False if it was not in expect."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    sql = "UPDATE source_replacement SET state = :state, update_time = :now"
    sql += (", " + sets if sets else "") + " WHERE video_id = :v AND state = :expect"
    params = {**values, "state": state, "now": int(time.time()), "v": vid, "expect": expect}
    return (await conn.execute(text(sql), params)).rowcount == 1


async def delete(conn: AsyncConnection, vid: int) -> None:
    """Forget a video's replacement."""
    await conn.execute(text("DELETE FROM source_replacement WHERE video_id = :v"), {"v": vid})


async def source_in_use(conn: AsyncConnection, key: str) -> bool:
    """Whether any live video (an instant-upload twin included) still points at a source key."""
    sql = "SELECT 1 FROM video WHERE storage_uri = :k AND deleted_at IS NULL LIMIT 1"
    return (await conn.execute(text(sql), {"k": key})).first() is not None


async def abandoned_vids(conn: AsyncConnection, limit: int = 500) -> list[int]:
    """Videos whose replacement's transcode failed for good and whose bytes are still stored."""
    rows = await conn.execute(
        text("SELECT video_id FROM source_replacement WHERE state = 'abandoned' LIMIT :n"),
        {"n": limit},
    )
    return [int(r.video_id) for r in rows]
