"""Every query of the upload family (upload, upload_part); only this module runs them.

MySQL is the durable record of every upload; rows are mapped by column name; a status changes
only through ``move_upload`` (checked against upload.state, guarded on the old status).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.events import outbox
from vasset.events.types import EventType
from vasset.lifecycle import LostRace, Transition, record
from vasset.upload.state import OPEN, UPLOAD, UploadStatus

UPLOAD_COLUMNS = (
    "id, upload_id, token_hash, app_id, video_id, file_size, part_size, part_count, client_md5,"
    " storage_key, multipart_id, direct, status, md5_state, md5_parts, auto_transcode,"
    " task_priority, error, create_time, expires_at, completing_at"
)


UPLOAD_FIELDS = tuple(c.strip() for c in UPLOAD_COLUMNS.split(","))


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
    status: UploadStatus
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
        return self.status in OPEN and (now or time.time()) > self.expires_at


def _upload(row: Row) -> UploadRow:
    return upload_from(dict(row._mapping))


def upload_from(values: dict[str, Any]) -> UploadRow:
    """An UploadRow from a mapping of the UPLOAD_COLUMNS values."""
    values = {name: values[name] for name in UPLOAD_FIELDS}
    values["direct"] = bool(values["direct"])
    values["auto_transcode"] = bool(values["auto_transcode"])
    values["status"] = UploadStatus(values["status"])
    return UploadRow(**values)


_OPEN_VALUES = [s.value for s in OPEN]


def _open() -> Any:
    return bindparam("open", value=_OPEN_VALUES, expanding=True)


# uploads
async def get_upload(
    conn: AsyncConnection, upload_id: str, for_update: bool = False
) -> UploadRow | None:
    """The upload with this upid, or None."""
    sql = f"SELECT {UPLOAD_COLUMNS} FROM upload WHERE upload_id = :u"
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"u": upload_id})).first()
    return _upload(row) if row else None


async def open_upload_of_video(conn: AsyncConnection, vid: int) -> UploadRow | None:
    """The unfinished upload of a video, locked, or None."""
    row = (
        await conn.execute(
            text(
                f"SELECT {UPLOAD_COLUMNS} FROM upload WHERE video_id = :v AND status IN :open"
                " FOR UPDATE"
            ).bindparams(_open()),
            {"v": vid},
        )
    ).first()
    return _upload(row) if row else None


async def multipart_id_of_video(conn: AsyncConnection, vid: int) -> str | None:
    """The storage upload handle of a video's upload, if it had one."""
    row = (
        await conn.execute(text("SELECT multipart_id FROM upload WHERE video_id = :v"), {"v": vid})
    ).first()
    return row.multipart_id if row else None


async def multipart_in_use(conn: AsyncConnection, multipart_id: str) -> bool:
    """Whether an unfinished upload owns this storage multipart upload."""
    row = (
        await conn.execute(
            text("SELECT 1 FROM upload WHERE multipart_id = :m AND status IN :open").bindparams(
                _open()
            ),
            {"m": multipart_id},
        )
    ).first()
    return row is not None


async def expired_uploads(conn: AsyncConnection, now: int, limit: int = 100) -> list[UploadRow]:
    """Unfinished uploads past their expiry."""
    rows = await conn.execute(
        text(
            f"SELECT {UPLOAD_COLUMNS} FROM upload WHERE status IN :open"
            " AND expires_at < :now LIMIT :lim"
        ).bindparams(_open()),
        {"now": now, "lim": limit},
    )
    return [_upload(r) for r in rows]


async def insert_upload(conn: AsyncConnection, **values: Any) -> None:
    """Record a new upload (status uploading)."""
    now = int(time.time())
    values.setdefault("create_time", now)
    values.setdefault("update_time", now)
    values["status"] = UploadStatus.UPLOADING.value
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    await conn.execute(text(f"INSERT INTO upload ({cols}) VALUES ({params})"), values)
    await outbox.emit(conn, int(values["video_id"]), EventType.UPLOAD_CREATED, status="uploading")


async def advance_md5(conn: AsyncConnection, upload_pk: int, pseq: int, state: bytes) -> bool:
    """Save the whole-file MD5 state through part pseq, if parts 1..pseq-1 were the last saved."""
    result = await conn.execute(
        text(
            "UPDATE upload SET md5_state = :s, md5_parts = :p"
            " WHERE id = :u AND md5_parts = :prev AND status = :uploading"
        ),
        {
            "s": state,
            "p": pseq,
            "u": upload_pk,
            "prev": pseq - 1,
            "uploading": UploadStatus.UPLOADING.value,
        },
    )
    return result.rowcount == 1


# moves
async def move_upload(
    conn: AsyncConnection,
    upload_pk: int,
    source: UploadStatus | Iterable[UploadStatus],
    target: UploadStatus,
    **payload: Any,
) -> Transition:
    """Move an upload from source (one status or several) to target, setting payload.

    IllegalTransition if the lifecycle has no such move; LostRace if the row is no longer in
    a source status. Runs in the caller's transaction.
    """
    sources = UPLOAD.check(source, target)
    old = sources[0]
    if len(sources) > 1:
        found = (await _state(conn, upload_pk, lock=True))[0]
        if found not in sources:
            raise LostRace("upload", upload_pk, sources, target, found)
        old = UploadStatus(found)
    sets = ", ".join(["status = :target", "update_time = :now", *(f"{k} = :{k}" for k in payload)])
    result = await conn.execute(
        text(f"UPDATE upload SET {sets} WHERE id = :id AND status = :old"),
        {
            **payload,
            "target": target.value,
            "now": int(time.time()),
            "id": upload_pk,
            "old": old.value,
        },
    )
    if result.rowcount != 1:
        found = (await _state(conn, upload_pk))[0]
        raise LostRace("upload", upload_pk, sources, target, found)
    return await record(conn, Transition("upload", upload_pk, old.value, target.value, payload))


async def _state(
    conn: AsyncConnection, upload_pk: int, lock: bool = False
) -> tuple[str | None, int | None]:
    """(status, completing_at) of an upload, or (None, None)."""
    sql = "SELECT status, completing_at FROM upload WHERE id = :id"
    row = (
        await conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"id": upload_pk})
    ).first()
    return (row.status, row.completing_at) if row else (None, None)


async def take_completion(
    conn: AsyncConnection, upload_pk: int, lease: int, now: int | None = None
) -> Transition:
    """Claim the right to complete: from uploading, or from a completion that died.

    LostRace when another request is completing (its lease still runs) or the upload ended.
    """
    now = int(time.time()) if now is None else now
    status, completing_at = await _state(conn, upload_pk, lock=True)
    U = UploadStatus
    if status == U.COMPLETING and (completing_at or 0) < now - lease:
        return await move_upload(conn, upload_pk, U.COMPLETING, U.COMPLETING, completing_at=now)
    if status != U.UPLOADING:
        raise LostRace("upload", upload_pk, (U.UPLOADING, U.COMPLETING), U.COMPLETING, status)
    return await move_upload(conn, upload_pk, U.UPLOADING, U.COMPLETING, completing_at=now)


async def renew_completion(conn: AsyncConnection, upload_pk: int, since: int, now: int) -> bool:
    """Move a running completion's lease to now; False if it was taken over or ended.

    Not a state change (the upload stays completing): only the claim's time moves, and only
    while it is still the time this claimer set.
    """
    result = await conn.execute(
        text(
            "UPDATE upload SET completing_at = :now"
            " WHERE id = :id AND status = :completing AND completing_at = :since"
        ),
        {"now": now, "id": upload_pk, "completing": UploadStatus.COMPLETING.value, "since": since},
    )
    return result.rowcount == 1


# parts
async def list_parts(conn: AsyncConnection, upload_pk: int) -> dict[int, tuple[int, str]]:
    """pseq -> (size, md5) of every recorded part."""
    rows = await conn.execute(
        text("SELECT pseq, size, md5 FROM upload_part WHERE upload_pk = :u"), {"u": upload_pk}
    )
    return {r.pseq: (r.size, r.md5) for r in rows}


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
