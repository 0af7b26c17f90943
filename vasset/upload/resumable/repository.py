"""Every query of resumable_upload and upload_ticket; only this module runs them.

A protocol upload is an ordinary upload row plus one resumable_upload row. Its durable offset,
the tail size, the next part number and the MD5 state move together in one guarded UPDATE that
only the holder of the write lease can make.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.upload.repository import UPLOAD_FIELDS, UploadRow, upload_from

RESUMABLE_COLUMNS = (
    "protocol, upload_length, upload_offset, tail_size, tail_part, next_part,"
    " r.md5_state AS r_md5_state, concat, concat_parts, metadata, ticket_hash, writer,"
    " writer_until"
)


class ResumableRow(msgspec.Struct):
    """One protocol upload: its upload row and what the protocol adds."""

    upload: UploadRow
    protocol: str
    length: int | None
    offset: int
    tail_size: int
    tail_part: int
    next_part: int
    md5_state: bytes | None
    concat: str | None
    concat_parts: str | None
    metadata: str | None
    ticket_hash: str | None
    writer: str | None
    writer_until: int | None

    @property
    def upload_id(self) -> str:
        """The public id (the last segment of the upload URL)."""
        return self.upload.upload_id

    @property
    def complete(self) -> bool:
        """Whether every declared byte has arrived."""
        return self.length is not None and self.offset >= self.length


def _resumable(row: Row) -> ResumableRow:
    values = dict(row._mapping)
    upload = upload_from(values)
    return ResumableRow(
        upload=upload,
        protocol=values["protocol"],
        length=values["upload_length"],
        offset=values["upload_offset"],
        tail_size=values["tail_size"],
        tail_part=values["tail_part"],
        next_part=values["next_part"],
        md5_state=values["r_md5_state"],
        concat=values["concat"],
        concat_parts=values["concat_parts"],
        metadata=values["metadata"],
        ticket_hash=values["ticket_hash"],
        writer=values["writer"],
        writer_until=values["writer_until"],
    )


_UPLOAD_COLS = ", ".join(f"u.{c}" for c in UPLOAD_FIELDS)


async def get_resumable(
    conn: AsyncConnection, upload_id: str, for_update: bool = False
) -> ResumableRow | None:
    """The protocol upload with this public id, or None (part-mode uploads are not found)."""
    sql = (
        f"SELECT {_UPLOAD_COLS}, {RESUMABLE_COLUMNS} FROM upload u"
        " JOIN resumable_upload r ON r.upload_pk = u.id WHERE u.upload_id = :u"
    )
    if for_update:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"u": upload_id})).first()
    return _resumable(row) if row else None


async def insert_resumable(conn: AsyncConnection, **values: Any) -> None:
    """Record the protocol half of a new upload."""
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    await conn.execute(text(f"INSERT INTO resumable_upload ({cols}) VALUES ({params})"), values)


async def take_lease(conn: AsyncConnection, upload_pk: int, writer: str, ttl_ms: int) -> bool:
    """Become the one writer of an upload unless another holds a live lease."""
    now = int(time.time() * 1000)
    result = await conn.execute(
        text(
            "UPDATE resumable_upload SET writer = :w, writer_until = :until"
            " WHERE upload_pk = :u AND (writer IS NULL OR writer = :w OR writer_until < :now)"
        ),
        {"w": writer, "until": now + ttl_ms, "u": upload_pk, "now": now},
    )
    return result.rowcount == 1


async def renew_lease(conn: AsyncConnection, upload_pk: int, writer: str, ttl_ms: int) -> bool:
    """Extend a held lease; False when it was lost."""
    now = int(time.time() * 1000)
    result = await conn.execute(
        text(
            "UPDATE resumable_upload SET writer_until = :until WHERE upload_pk = :u AND writer = :w"
        ),
        {"w": writer, "until": now + ttl_ms, "u": upload_pk},
    )
    return result.rowcount == 1


async def release_lease(conn: AsyncConnection, upload_pk: int, writer: str) -> None:
    """Give the lease back (a no-op when another writer took it)."""
    await conn.execute(
        text(
            "UPDATE resumable_upload SET writer = NULL, writer_until = NULL"
            " WHERE upload_pk = :u AND writer = :w"
        ),
        {"u": upload_pk, "w": writer},
    )


async def claim_part(conn: AsyncConnection, upload_pk: int, writer: str) -> int | None:
    """A part number no other writer will ever use (None: this writer lost its lease)."""
    row = (
        await conn.execute(
            text(
                "SELECT next_part FROM resumable_upload WHERE upload_pk = :u AND writer = :w"
                " FOR UPDATE"
            ),
            {"u": upload_pk, "w": writer},
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        text("UPDATE resumable_upload SET next_part = next_part + 1 WHERE upload_pk = :u"),
        {"u": upload_pk},
    )
    return int(row.next_part)


async def advance(
    conn: AsyncConnection,
    upload_pk: int,
    writer: str,
    expected_offset: int,
    offset: int,
    tail_size: int,
    tail_part: int,
    md5_state: bytes,
) -> bool:
    """Move the durable offset forward; only the lease holder, only from the offset it read."""
    result = await conn.execute(
        text(
            "UPDATE resumable_upload SET upload_offset = :o, tail_size = :t, tail_part = :tp,"
            " md5_state = :s WHERE upload_pk = :u AND writer = :w AND upload_offset = :prev"
        ),
        {
            "o": offset,
            "t": tail_size,
            "tp": tail_part,
            "s": md5_state,
            "u": upload_pk,
            "w": writer,
            "prev": expected_offset,
        },
    )
    return result.rowcount == 1


async def declare_length(conn: AsyncConnection, upload_pk: int, length: int) -> bool:
    """Set a deferred length once; False if it was already set."""
    result = await conn.execute(
        text(
            "UPDATE resumable_upload SET upload_length = :len"
            " WHERE upload_pk = :u AND upload_length IS NULL"
        ),
        {"len": length, "u": upload_pk},
    )
    if result.rowcount == 1:
        await conn.execute(
            text("UPDATE upload SET file_size = :len WHERE id = :u"),
            {"len": length, "u": upload_pk},
        )
    return result.rowcount == 1


# tickets
class TicketRow(msgspec.Struct):
    """One upload ticket."""

    ticket_hash: str
    app_id: int
    max_size: int
    auto_transcode: bool
    task_priority: int
    uses: int
    used: int
    expires_at: int
    ttl: int | None = None
    #: Stored TranscodeOptions (JSON) of its uploads' automatic transcode (template=).
    transcode_options: str | None = None
    #: Playback policy of the videos it creates (None: signed).
    playback_policy: str | None = None


async def insert_ticket(conn: AsyncConnection, **values: Any) -> None:
    """Record a new ticket."""
    values.setdefault("create_time", int(time.time()))
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    await conn.execute(text(f"INSERT INTO upload_ticket ({cols}) VALUES ({params})"), values)


async def get_ticket(conn: AsyncConnection, ticket_hash: str) -> TicketRow | None:
    """The ticket with this hash, or None."""
    row = (
        await conn.execute(
            text(
                "SELECT ticket_hash, app_id, max_size, auto_transcode, task_priority, uses, used,"
                " expires_at, ttl, transcode_options, playback_policy"
                " FROM upload_ticket WHERE ticket_hash = :h"
            ),
            {"h": ticket_hash},
        )
    ).first()
    if row is None:
        return None
    values = dict(row._mapping)
    values["auto_transcode"] = bool(values["auto_transcode"])
    return TicketRow(**values)


async def use_ticket(conn: AsyncConnection, ticket_hash: str) -> bool:
    """Count one upload against a ticket; False when it has none left."""
    result = await conn.execute(
        text("UPDATE upload_ticket SET used = used + 1 WHERE ticket_hash = :h AND used < uses"),
        {"h": ticket_hash},
    )
    return result.rowcount == 1


async def drop_expired_tickets(conn: AsyncConnection, now: int) -> int:
    """Remove tickets past their expiry (the janitor's sweep)."""
    result = await conn.execute(
        text("DELETE FROM upload_ticket WHERE expires_at < :now"), {"now": now - 86400}
    )
    return int(result.rowcount or 0)
