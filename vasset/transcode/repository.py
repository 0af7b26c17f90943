"""Every query of the job family (transcode_job); only this module runs them.

Rows are mapped by column name; a job's state changes only through ``move_job`` (checked
against transcode.jobstate, guarded on the old state and, for a worker, its lease token).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset.lifecycle import LostRace, Transition, record
from vasset.transcode.jobstate import JOB, LIVE, JobState
from vasset.videos.state import VideoStatus

JOB_COLUMNS = (
    "id, app_id, video_id, kind, priority, state, attempts, max_attempts, run_after,"
    " lease_until, lease_token, worker, params, error, progress, create_time, started_at,"
    " trace_context"
)
_LIVE = [s.value for s in LIVE]
#: Moves by the holder itself that end the job: they keep its token (its outputs carry it).
_ENDS = (JobState.SUCCEEDED, JobState.FAILED)


class Job(msgspec.Struct):
    """One transcode job as claimed by a worker."""

    id: int
    app_id: int
    video_id: int
    kind: str
    priority: int
    state: JobState
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
    #: W3C traceparent of the request that enqueued the job (None when tracing was off).
    trace_context: str | None = None

    @property
    def options(self) -> dict:
        """Decoded job parameters (definitions, src, dst)."""
        return json.loads(self.params) if self.params else {}


class Add(msgspec.Struct, frozen=True):
    """A payload value that adds to a counter column (never below zero) instead of setting it."""

    by: int


def _job(row: Row) -> Job:
    values = dict(row._mapping)
    values["state"] = JobState(values["state"])
    return Job(**values)


def _live(name: str = "live") -> Any:
    return bindparam(name, value=_LIVE, expanding=True)


# reads
async def get_job(conn: AsyncConnection, job_id: int) -> Job | None:
    """A job by id."""
    row = (
        await conn.execute(
            text(f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE id = :id"), {"id": job_id}
        )
    ).first()
    return _job(row) if row else None


async def holds(conn: AsyncConnection, job: Job, lock: bool = False) -> bool:
    """Whether the job is still running under this worker's fencing token."""
    sql = "SELECT lease_token, state FROM transcode_job WHERE id = :id"
    if lock:
        sql += " FOR UPDATE"
    row = (await conn.execute(text(sql), {"id": job.id})).first()
    return row is not None and row.lease_token == job.lease_token and row.state == JobState.RUNNING


async def live_jobs_of_video(conn: AsyncConnection, vid: int) -> list[tuple[int, JobState]]:
    """(id, state) of a video's queued and running jobs, locked."""
    rows = await conn.execute(
        text(
            "SELECT id, state FROM transcode_job WHERE video_id = :vid AND state IN :live"
            " ORDER BY id FOR UPDATE"
        ).bindparams(_live()),
        {"vid": vid},
    )
    return [(int(r.id), JobState(r.state)) for r in rows]


async def has_live_job(conn: AsyncConnection, vid: int) -> bool:
    """Whether a video has a queued or running job."""
    row = (
        await conn.execute(
            text("SELECT 1 FROM transcode_job WHERE video_id = :v AND state IN :live").bindparams(
                _live()
            ),
            {"v": vid},
        )
    ).first()
    return row is not None


async def claim_candidates(conn: AsyncConnection, now: float, limit: int) -> list[tuple[int, int]]:
    """(job id, video id) of runnable queued jobs, best first (priority, then age); unlocked."""
    rows = await conn.execute(
        text(
            "SELECT id, video_id FROM transcode_job WHERE state = 'queued' AND run_after <= :now"
            " ORDER BY priority DESC, id ASC LIMIT :n"
        ),
        {"now": now, "n": limit},
    )
    return [(int(r.id), int(r.video_id)) for r in rows]


async def lock_runnable(conn: AsyncConnection, job_id: int, now: float) -> Job | None:
    """The job, locked, if it is still queued and runnable (SKIP LOCKED)."""
    row = (
        await conn.execute(
            text(
                f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE id = :id AND state = 'queued'"
                " AND run_after <= :now FOR UPDATE SKIP LOCKED"
            ),
            {"id": job_id, "now": now},
        )
    ).first()
    return _job(row) if row else None


async def expired_leases(conn: AsyncConnection, now: float, limit: int) -> list[tuple[int, int]]:
    """(job id, video id) of running jobs whose lease ran out; unlocked."""
    rows = await conn.execute(
        text(
            "SELECT id, video_id FROM transcode_job WHERE state = 'running'"
            " AND lease_until < :now LIMIT :lim"
        ),
        {"now": now, "lim": limit},
    )
    return [(int(r.id), int(r.video_id)) for r in rows]


async def lock_expired(conn: AsyncConnection, job_id: int, now: float) -> Job | None:
    """The job, locked, if it is still running on an expired lease (SKIP LOCKED)."""
    row = (
        await conn.execute(
            text(
                f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE id = :id"
                " AND state = 'running' AND lease_until < :now FOR UPDATE SKIP LOCKED"
            ),
            {"id": job_id, "now": now},
        )
    ).first()
    return _job(row) if row else None


async def live_attempts(conn: AsyncConnection, job_ids: list[int]) -> set[tuple[int, int]]:
    """(job id, lease token) of those jobs that are running now (their temp dirs are in use)."""
    if not job_ids:
        return set()
    rows = await conn.execute(
        text(
            "SELECT id, lease_token FROM transcode_job WHERE state = 'running' AND id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": job_ids},
    )
    return {(int(r.id), int(r.lease_token)) for r in rows}


_LIST_WHERE = {
    # What an operator should look at: failed, stuck, running and queued (not done ones).
    "open": "state IN ('failed', 'running', 'queued')",
    "failed": "state = 'failed'",
    "queued": "state = 'queued'",
    "running": "state = 'running'",
    "all": "1 = 1",
    "stuck": "(state = 'running' AND lease_until < :now)"
    " OR (state = 'queued' AND run_after < :old)",
}


async def list_jobs(conn: AsyncConnection, which: str, stuck_after: float) -> list[Job]:
    """Jobs an operator looks at: open, stuck (queued long or lease expired), failed, or all."""
    now = time.time()
    rows = await conn.execute(
        text(
            f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE {_LIST_WHERE[which]}"
            " ORDER BY id DESC LIMIT 500"
        ),
        {"now": now, "old": now - stuck_after},
    )
    return [_job(r) for r in rows]


async def videos_without_live_job(
    conn: AsyncConnection, updated_before: int, limit: int = 50
) -> list[tuple[int, int, int]]:
    """(vid, app id, priority) of source videos queued or transcoding with no live job."""
    rows = await conn.execute(
        text(
            "SELECT v.id, v.app_id, v.task_priority FROM video v WHERE v.deleted_at IS NULL"
            " AND v.parent_id IS NULL AND v.status IN :waiting AND v.update_time < :old"
            " AND NOT EXISTS (SELECT 1 FROM transcode_job j"
            " WHERE j.video_id = v.id AND j.state IN :live) LIMIT :lim"
        ).bindparams(_live(), bindparam("waiting", expanding=True)),
        {
            "old": updated_before,
            "lim": limit,
            "waiting": [VideoStatus.TRANSCODE_QUEUED.value, VideoStatus.TRANSCODING.value],
        },
    )
    return [(int(r.id), int(r.app_id), int(r.task_priority)) for r in rows]


# writes
async def insert_job(
    conn: AsyncConnection,
    app_id: int,
    vid: int,
    kind: str,
    priority: int,
    max_attempts: int,
    params: dict | None,
    trace_context: str | None = None,
) -> int:
    """Insert a queued, runnable job; returns its id."""
    result = await conn.execute(
        text(
            "INSERT INTO transcode_job (app_id, video_id, kind, priority, state, max_attempts,"
            " run_after, params, trace_context, create_time, update_time)"
            " VALUES (:app, :vid, :kind, :prio, :state, :max, 0, :params, :trace, :now, :now)"
        ),
        {
            "app": app_id,
            "vid": vid,
            "kind": kind,
            "prio": priority,
            "state": JobState.QUEUED.value,
            "max": max_attempts,
            "params": json.dumps(params or {}),
            "trace": trace_context,
            "now": time.time(),
        },
    )
    return int(result.lastrowid)


async def renew_lease(conn: AsyncConnection, job: Job, lease: float, progress: int) -> bool:
    """Extend a running job's lease and record progress; False when the token no longer holds."""
    now = time.time()
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET lease_until = :until, progress = :p, update_time = :now"
            " WHERE id = :id AND lease_token = :t AND state = 'running'"
        ),
        {"until": now + lease, "p": progress, "now": now, "id": job.id, "t": job.lease_token},
    )
    return result.rowcount == 1


async def move_job(
    conn: AsyncConnection,
    job_id: int,
    source: JobState | Iterable[JobState],
    target: JobState,
    *,
    token: int | None = None,
    **payload: Any,
) -> Transition:
    """Move a job from source to target (with token: only under that lease), setting payload.

    Every move but an ending one takes the lease token up by one, so a former holder is fenced
    off; an ending keeps the token of the attempt that produced the outputs.
    IllegalTransition if the lifecycle has no such move; LostRace if the row is no longer in
    a source state (or under token). Runs in the caller's transaction.
    """
    sources = JOB.check(source, target)
    old = sources[0]
    if len(sources) > 1:
        found = await _state(conn, job_id, lock=True)
        if found not in sources:
            raise LostRace("job", job_id, sources, target, found)
        old = JobState(found)
    now = time.time()
    sets = ["state = :target", "update_time = :now"]
    if target not in _ENDS:
        # A new holder, or none: whoever held the job before is fenced off.
        sets.append("lease_token = lease_token + 1")
    params: dict[str, Any] = {"target": target.value, "now": now, "id": job_id, "old": old.value}
    for column, value in payload.items():
        if isinstance(value, Add):
            sets.append(f"{column} = GREATEST({column} + :{column}, 0)")
            params[column] = value.by
        else:
            sets.append(f"{column} = :{column}")
            params[column] = value
    where = "id = :id AND state = :old"
    if token is not None:
        where += " AND lease_token = :token"
        params["token"] = token
    result = await conn.execute(
        text(f"UPDATE transcode_job SET {', '.join(sets)} WHERE {where}"), params
    )
    if result.rowcount != 1:
        raise LostRace("job", job_id, sources, target, await _state(conn, job_id))
    return await record(conn, Transition("job", job_id, old.value, target.value, payload))


async def _state(conn: AsyncConnection, job_id: int, lock: bool = False) -> str | None:
    """The state of a job, or None."""
    sql = "SELECT state FROM transcode_job WHERE id = :id"
    row = (await conn.execute(text(sql + (" FOR UPDATE" if lock else "")), {"id": job_id})).first()
    return row.state if row else None


async def count_jobs_by_state(conn: AsyncConnection) -> dict[str, int]:
    """How many jobs are in each state (the queue-depth metric; reads the state index)."""
    sql = "SELECT state, COUNT(*) AS jobs FROM transcode_job GROUP BY state"
    return {row.state: int(row.jobs) for row in await conn.execute(text(sql))}
