"""Writing events: one call per client-visible change, on the change's own connection.

The repositories call these inside the transaction that makes the change (lifecycle.record for
every video move; inserting a video, an upload, a rendition or snapshots; progress; deletion).
After the transaction commits, the ids of the apps that got events are published on Redis
(notify.py) to wake live SSE streams; a lost publish only delays them (they also poll).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.events import repository as repo
from vasset.events.types import ON_VIDEO_STATUS, PROGRESS_EVERY, EventType

#: conn.info key: app ids with events in the open transaction (published after commit).
PENDING = "vasset_event_apps"


async def emit(conn: AsyncConnection, vid: int, type_: EventType, **extra: Any) -> int | None:
    """Write one event of a top-level video; returns its id (None: no such video)."""
    if not vid:
        return None  # a tus partial upload: no video, no events
    facts = await repo.video_facts(conn, vid)
    if facts is None:
        return None
    seq = await repo.next_seq(conn, vid)
    data: dict[str, Any] = {"vid": vid}
    if facts.upload_id:
        data["upload_id"] = facts.upload_id
    data["status"] = extra.pop("status", None) or facts.status
    data["seq"] = seq
    if facts.metadata:
        data["metadata"] = json.loads(facts.metadata)
    data.update(extra)
    body = {"type": type_.value, "timestamp": _now_iso(), "data": data}
    event_id = await repo.insert_event(conn, facts.app_id, vid, seq, type_.value, body)
    conn.sync_connection.info.setdefault(PENDING, set()).add(facts.app_id)  # type: ignore[union-attr]
    return event_id


async def on_video_move(
    conn: AsyncConnection, vid: int, old: str, new: str, payload: dict[str, Any]
) -> None:
    """The event of a video's status move (lifecycle.record calls this for every one)."""
    type_ = ON_VIDEO_STATUS.get(new)
    if type_ is None:
        return
    extra: dict[str, Any] = {"status": new}
    error = payload.get("error")
    if type_ is EventType.UPLOAD_COMPLETED:
        if payload.get("hash"):
            extra["md5"] = payload["hash"]
        if payload.get("file_size"):
            extra["size"] = payload["file_size"]
    elif type_ is EventType.UPLOAD_FAILED and error:
        extra["reason"] = str(error).split(":", 1)[0]
    elif type_ is EventType.TRANSCODE_FAILED and error:
        code, _, message = str(error).partition(":")
        extra["error"] = code.strip()
        extra["message"] = message.strip() or None
    elif type_ is EventType.PLAYABLE or type_ is EventType.TRANSCODE_SUCCEEDED:
        extra["progress"] = 100
        if type_ is EventType.PLAYABLE:
            # The status move comes with the whole ladder; an early one says "partial".
            extra["ladder"] = "complete"
    if type_ is EventType.TRANSCODE_SUCCEEDED:
        # The 100 % progress event is always written (the heartbeat's steps stop at 99).
        await emit(conn, vid, EventType.TRANSCODE_PROGRESS, status=new, progress=100)
    await emit(conn, vid, type_, **extra)


async def on_video_created(conn: AsyncConnection, vid: int, status: str, **facts: Any) -> None:
    """A video that starts past uploading (instant upload, a copy) reports where it starts."""
    if status == "uploaded":
        await emit(conn, vid, EventType.UPLOAD_COMPLETED, status=status, **facts)
    elif status == "transcode_queued":
        await emit(conn, vid, EventType.TRANSCODE_QUEUED, status=status)


async def on_progress(conn: AsyncConnection, vid: int, progress: int) -> None:
    """A progress event, at most one per PROGRESS_EVERY seconds per video, plus 100 %."""
    facts = await repo.video_facts(conn, vid)
    if facts is None:
        return
    now_ms = int(time.time() * 1000)
    if progress < 100 and now_ms - facts.progress_event_ms < PROGRESS_EVERY * 1000:
        return
    await repo.mark_progress_event(conn, vid, now_ms)
    await emit(conn, vid, EventType.TRANSCODE_PROGRESS, progress=progress)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
