"""The transcode job queue in MySQL: enqueue, claim (SKIP LOCKED), lease, finish, reap."""

from __future__ import annotations

import json
import time

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

JOB_COLUMNS = (
    "id, app_id, video_id, kind, priority, state, attempts, max_attempts, run_after,"
    " lease_until, lease_token, worker, params, error, progress, create_time, started_at"
)


class Job(msgspec.Struct):
    """One transcode job as claimed by a worker."""

    id: int
    app_id: int
    video_id: int
    kind: str
    priority: int
    state: str
    attempts: int
    max_attempts: int
    run_after: float
    lease_until: float | None
    lease_token: int
    worker: str | None
    params: str | None
    error: str | None
    progress: int
    create_time: float
    started_at: float | None

    @property
    def options(self) -> dict:
        """Decoded job parameters (definitions, src, dst)."""
        return json.loads(self.params) if self.params else {}


def _job(row) -> Job:
    return Job(*row)


async def enqueue(
    conn: AsyncConnection,
    app_id: int,
    vid: int,
    kind: str,
    priority: int,
    max_attempts: int,
    params: dict | None = None,
) -> int:
    """Queue a job for a video and move the video to transcode_queued; returns the job id."""
    now = time.time()
    # One live job per video: a new request supersedes queued or running ones.
    await cancel_for_video(conn, vid, reason="superseded")
    result = await conn.execute(
        text(
            "INSERT INTO transcode_job (app_id, video_id, kind, priority, state, max_attempts,"
            " run_after, params, create_time, update_time)"
            " VALUES (:app, :vid, :kind, :prio, 'queued', :max, 0, :params, :now, :now)"
        ),
        {
            "app": app_id,
            "vid": vid,
            "kind": kind,
            "prio": priority,
            "max": max_attempts,
            "params": json.dumps(params or {}),
            "now": now,
        },
    )
    await videos.transition(
        conn,
        vid,
        VideoStatus.TRANSCODE_QUEUED.value,
        task_priority=priority,
        progress=0,
        error=None,
    )
    return int(result.lastrowid)


async def cancel_for_video(conn: AsyncConnection, vid: int, reason: str = "cancelled") -> int:
    """Cancel queued and running jobs of a video; running workers see it at their next heartbeat."""
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET state = 'cancelled', error = :reason, update_time = :now,"
            " lease_token = lease_token + 1, finished_at = :now"
            " WHERE video_id = :vid AND state IN ('queued', 'running')"
        ),
        {"vid": vid, "now": time.time(), "reason": reason},
    )
    return result.rowcount
