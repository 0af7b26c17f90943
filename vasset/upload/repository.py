"""SQL for uploads and their parts (MySQL is the durable record of every upload)."""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

UPLOAD_COLUMNS = (
    "id, upload_id, token_hash, app_id, video_id, file_size, part_size, part_count, client_md5,"
    " storage_key, multipart_id, direct, status, md5_state, md5_parts, auto_transcode,"
    " task_priority, error, create_time, expires_at, completing_at"
)


class UploadRow(msgspec.Struct):
    """One row of the upload table."""

    id: int
    upload_id: str
    token_hash: str
    app_id: int
    video_id: int
    file_size: int
    part_size: int
    part_count: int
    client_md5: str | None
    storage_key: str
    multipart_id: str
    direct: bool
    status: str
    md5_state: bytes | None
    md5_parts: int
    auto_transcode: bool
    task_priority: int
    error: str | None
    create_time: int
    expires_at: int
    completing_at: int | None

    def part_length(self, pseq: int) -> int:
        """Exact size of part pseq (the last part holds the remainder)."""
        if pseq < self.part_count:
            return self.part_size
        return self.file_size - self.part_size * (self.part_count - 1)

    def expired(self, now: float | None = None) -> bool:
        """Whether an unfinished upload has passed its expiry."""
        return self.status in ("uploading", "completing") and (now or time.time()) > self.expires_at


def _row(row) -> UploadRow:
    values = list(row)
    values[11] = bool(values[11])
    values[15] = bool(values[15])
    return UploadRow(*values)


async def get_upload(conn: AsyncConnection, upload_id: str, for_update: bool = False):
    """The upload with this upid, or None."""
    sql = f"SELECT {UPLOAD_COLUMNS} FROM upload WHERE upload_id = :u"
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"u": upload_id})).first()
    return _row(row) if row else None


async def insert_upload(conn: AsyncConnection, **values) -> None:
    """Record a new upload."""
    now = int(time.time())
    values.setdefault("create_time", now)
    values.setdefault("update_time", now)
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    await conn.execute(text(f"INSERT INTO upload ({cols}) VALUES ({params})"), values)


async def list_parts(conn: AsyncConnection, upload_pk: int) -> dict[int, tuple[int, str]]:
    """pseq -> (size, md5) of every recorded part."""
    rows = await conn.execute(
        text("SELECT pseq, size, md5 FROM upload_part WHERE upload_pk = :u"), {"u": upload_pk}
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def has_part(conn: AsyncConnection, upload_pk: int, pseq: int) -> bool:
    """Whether part pseq is recorded."""
    row = (
        await conn.execute(
            text("SELECT 1 FROM upload_part WHERE upload_pk = :u AND pseq = :p"),
            {"u": upload_pk, "p": pseq},
        )
    ).first()
    return row is not None


async def count_parts(conn: AsyncConnection, upload_pk: int) -> int:
    """How many parts are recorded."""
    count: int = (
        await conn.execute(
            text("SELECT COUNT(*) FROM upload_part WHERE upload_pk = :u"), {"u": upload_pk}
        )
    ).scalar_one()
    return int(count)


async def record_part(
    conn: AsyncConnection, upload_pk: int, pseq: int, size: int, md5: str
) -> None:
    """Record a stored part; recording it twice keeps the first record."""
    await conn.execute(
        text(
            "INSERT IGNORE INTO upload_part (upload_pk, pseq, size, md5, create_time)"
            " VALUES (:u, :p, :s, :m, :t)"
        ),
        {"u": upload_pk, "p": pseq, "s": size, "m": md5, "t": int(time.time())},
    )


async def forget_parts(conn: AsyncConnection, upload_pk: int, pseqs: list[int]) -> None:
    """Drop part records whose bytes turned out to be missing or different in storage."""
    for pseq in pseqs:
        await conn.execute(
            text("DELETE FROM upload_part WHERE upload_pk = :u AND pseq = :p"),
            {"u": upload_pk, "p": pseq},
        )


async def advance_md5(conn: AsyncConnection, upload_pk: int, pseq: int, state: bytes) -> bool:
    """Save the whole-file MD5 state through part pseq, if parts 1..pseq-1 were the last saved."""
    result = await conn.execute(
        text(
            "UPDATE upload SET md5_state = :s, md5_parts = :p"
            " WHERE id = :u AND md5_parts = :prev AND status = 'uploading'"
        ),
        {"s": state, "p": pseq, "u": upload_pk, "prev": pseq - 1},
    )
    return result.rowcount == 1


async def set_status(conn: AsyncConnection, upload_pk: int, status: str, **extra) -> None:
    """Move an upload to status, with optional extra columns."""
    sets = ", ".join(["status = :status", "update_time = :now", *(f"{k} = :{k}" for k in extra)])
    await conn.execute(
        text(f"UPDATE upload SET {sets} WHERE id = :id"),
        {"status": status, "now": int(time.time()), "id": upload_pk, **extra},
    )


async def take_completion(conn: AsyncConnection, upload_pk: int, lease: int) -> bool:
    """Claim the right to complete: from uploading, or from a completion that died."""
    now = int(time.time())
    result = await conn.execute(
        text(
            "UPDATE upload SET status = 'completing', completing_at = :now, update_time = :now"
            " WHERE id = :id AND (status = 'uploading'"
            " OR (status = 'completing' AND completing_at < :stale))"
        ),
        {"now": now, "id": upload_pk, "stale": now - lease},
    )
    return result.rowcount == 1


async def expired_uploads(conn: AsyncConnection, now: int, limit: int = 100) -> list[UploadRow]:
    """Unfinished uploads past their expiry."""
    rows = await conn.execute(
        text(
            f"SELECT {UPLOAD_COLUMNS} FROM upload WHERE status IN ('uploading', 'completing')"
            " AND expires_at < :now LIMIT :lim"
        ),
        {"now": now, "lim": limit},
    )
    return [_row(r) for r in rows]
