"""Every query of the event outbox (and its fan-out into deliveries); only this module runs them.

An event row is written on the caller's connection, in the transaction of the change it
reports: a change that rolls back emits nothing, one that commits is never lost.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_encoder = msgspec.json.Encoder()


class EventRow(msgspec.Struct):
    """One outbox row."""

    id: int
    app_id: int
    video_id: int
    seq: int
    type: str
    body: str
    create_time: int


class VideoFacts(msgspec.Struct):
    """What an event says about its video, read inside the change's transaction."""

    app_id: int
    status: str
    metadata: str | None
    upload_id: str | None
    progress_event_ms: int


async def video_facts(conn: AsyncConnection, vid: int) -> VideoFacts | None:
    """The video's app, status, metadata and latest upload id (None: no such top-level video)."""
    row = (
        await conn.execute(
            text(
                "SELECT v.app_id, v.status, v.metadata, v.progress_event_ms,"
                " (SELECT u.upload_id FROM upload u WHERE u.video_id = v.id"
                "  ORDER BY u.id DESC LIMIT 1) AS upload_id"
                " FROM video v WHERE v.id = :v AND v.parent_id IS NULL"
            ),
            {"v": vid},
        )
    ).first()
    if row is None:
        return None
    return VideoFacts(
        app_id=row.app_id,
        status=row.status,
        metadata=row.metadata,
        upload_id=row.upload_id,
        progress_event_ms=row.progress_event_ms,
    )


async def next_seq(conn: AsyncConnection, vid: int) -> int:
    """The video's next event sequence number (its row stays locked to the transaction's end)."""
    await conn.execute(
        text("UPDATE video SET event_seq = LAST_INSERT_ID(event_seq + 1) WHERE id = :v"),
        {"v": vid},
    )
    return int((await conn.execute(text("SELECT LAST_INSERT_ID()"))).scalar_one())


async def mark_progress_event(conn: AsyncConnection, vid: int, now_ms: int) -> None:
    """Remember when the video's last progress event was written (for the throttle)."""
    await conn.execute(
        text("UPDATE video SET progress_event_ms = :t WHERE id = :v"), {"t": now_ms, "v": vid}
    )


async def insert_event(
    conn: AsyncConnection, app_id: int, vid: int, seq: int, type_: str, body: dict[str, Any]
) -> int:
    """Write the outbox row and one pending delivery per matching enabled endpoint."""
    now_ms = int(time.time() * 1000)
    result = await conn.execute(
        text(
            "INSERT INTO event (app_id, video_id, seq, type, body, create_time)"
            " VALUES (:a, :v, :s, :t, :b, :now)"
        ),
        {"a": app_id, "v": vid, "s": seq, "t": type_, "b": _encoder.encode(body), "now": now_ms},
    )
    event_id = int(result.lastrowid)
    # The matching endpoints first (a plain read), then a VALUES insert only when there are
    # any: an INSERT ... SELECT would take the table's AUTO-INC lock for every event, endpoints
    # or not, and widen the lock set of every transaction that changes a video.
    endpoints = await conn.execute(
        text(
            "SELECT id FROM webhook_endpoint WHERE app_id = :a AND enabled = 1"
            " AND deleted_at IS NULL AND (events = '*' OR FIND_IN_SET(:t, events) > 0)"
        ),
        {"a": app_id, "t": type_},
    )
    rows = [
        {"ep": r.id, "e": event_id, "a": app_id, "now": now_ms, "sec": now_ms // 1000}
        for r in endpoints
    ]
    if rows:
        await conn.execute(
            text(
                "INSERT INTO webhook_delivery (endpoint_id, event_id, app_id, status,"
                " next_attempt_at, create_time, update_time)"
                " VALUES (:ep, :e, :a, 'pending', :now, :sec, :sec)"
            ),
            rows,
        )
    return event_id


async def events_after(
    conn: AsyncConnection, app_id: int, after_id: int, vid: int | None = None, limit: int = 500
) -> list[EventRow]:
    """An app's events with id > after_id (of one video when vid is given), oldest first."""
    sql = (
        "SELECT id, app_id, video_id, seq, type, body, create_time FROM event"
        " WHERE app_id = :a AND id > :after"
    )
    params: dict[str, Any] = {"a": app_id, "after": after_id, "lim": limit}
    if vid is not None:
        sql += " AND video_id = :v"
        params["v"] = vid
    rows = await conn.execute(text(sql + " ORDER BY id LIMIT :lim"), params)
    return [EventRow(**dict(r._mapping)) for r in rows]


async def last_event_id(conn: AsyncConnection, app_id: int) -> int:
    """The id of an app's newest event (0: none)."""
    value: int | None = (
        await conn.execute(text("SELECT MAX(id) FROM event WHERE app_id = :a"), {"a": app_id})
    ).scalar_one()
    return int(value or 0)


async def drop_events_before(conn: AsyncConnection, before_ms: int, limit: int = 5000) -> int:
    """Remove events older than before_ms whose deliveries are all settled (retention)."""
    result = await conn.execute(
        text(
            "DELETE FROM event WHERE create_time < :t AND NOT EXISTS (SELECT 1 FROM"
            " webhook_delivery d WHERE d.event_id = event.id AND d.status = 'pending')"
            " LIMIT :lim"
        ),
        {"t": before_ms, "lim": limit},
    )
    return int(result.rowcount or 0)
