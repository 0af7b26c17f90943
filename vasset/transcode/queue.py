"""The transcode job queue in MySQL: enqueue, claim (SKIP LOCKED), lease, finish, reap."""

from __future__ import annotations

import json
import time

import msgspec
from sqlalchemy import bindparam, text
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


# Queued jobs one claim looks at: those whose video is being enqueued or claimed are skipped.
CLAIM_CANDIDATES = 20


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
    await lock_video(conn, vid)
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


async def lock_video(conn: AsyncConnection, vid: int, skip_locked: bool = False) -> bool:
    """Lock a video's row; False if it is missing (or, with skip_locked, held by another).

    Lock order: the video row, then its jobs. The API (enqueue, delete) locks the video and then
    cancels its jobs; a transaction here that took a job first and then the video would
    deadlock against it (MySQL 1213), so every one that touches both starts here.
    """
    sql = "SELECT id FROM video WHERE id = :v FOR UPDATE"
    if skip_locked:
        sql += " SKIP LOCKED"
    return (await conn.execute(text(sql), {"v": vid})).first() is not None


async def claim(conn: AsyncConnection, worker: str, lease: float) -> Job | None:
    """Take the best runnable job (priority, then age) and lease it; one short transaction.

    Candidates come from a plain read; each is then locked video first, job second, both with
    SKIP LOCKED, so a claim never waits on (or deadlocks with) an enqueue or another worker.
    """
    now = time.time()
    candidates = await conn.execute(
        text(
            "SELECT id, video_id FROM transcode_job WHERE state = 'queued' AND run_after <= :now"
            " ORDER BY priority DESC, id ASC LIMIT :n"
        ),
        {"now": now, "n": CLAIM_CANDIDATES},
    )
    for job_id, vid in [(int(r[0]), int(r[1])) for r in candidates]:
        if not await lock_video(conn, vid, skip_locked=True):
            continue
        row = (
            await conn.execute(
                text(
                    "SELECT id FROM transcode_job WHERE id = :id AND state = 'queued'"
                    " AND run_after <= :now FOR UPDATE SKIP LOCKED"
                ),
                {"id": job_id, "now": now},
            )
        ).first()
        if row is None:
            continue  # claimed, cancelled or superseded since the plain read
        await conn.execute(
            text(
                "UPDATE transcode_job SET state = 'running', attempts = attempts + 1,"
                " lease_token = lease_token + 1, lease_until = :until, worker = :w,"
                " started_at = :now, update_time = :now WHERE id = :id"
            ),
            {"until": now + lease, "w": worker, "now": now, "id": job_id},
        )
        job = await get_job(conn, job_id)
        assert job is not None
        return job
    return None


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
    return row is not None and row[0] == job.lease_token and row[1] == "running"


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
    return {(int(r[0]), int(r[1])) for r in rows}


async def heartbeat(conn: AsyncConnection, job: Job, lease: float, progress: int) -> bool:
    """Extend the lease and record progress; False when the token no longer holds."""
    await lock_video(conn, job.video_id)
    now = time.time()
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET lease_until = :until, progress = :p, update_time = :now"
            " WHERE id = :id AND lease_token = :t AND state = 'running'"
        ),
        {"until": now + lease, "p": progress, "now": now, "id": job.id, "t": job.lease_token},
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        text("UPDATE video SET progress = :p WHERE id = :v AND status = 'transcoding'"),
        {"p": progress, "v": job.video_id},
    )
    return True


async def finish(conn: AsyncConnection, job: Job, state: str, error: str | None = None) -> bool:
    """End a job (succeeded, failed, cancelled) if the token still holds."""
    now = time.time()
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET state = :s, error = :e, lease_until = NULL,"
            " finished_at = :now, update_time = :now,"
            " progress = IF(:s = 'succeeded', 100, progress)"
            " WHERE id = :id AND lease_token = :t AND state = 'running'"
        ),
        {"s": state, "e": error, "now": now, "id": job.id, "t": job.lease_token},
    )
    return result.rowcount == 1


def backoff(attempts: int, base: float) -> float:
    """Seconds before retry number ``attempts`` (exponential, capped at an hour)."""
    return min(3600.0, base * (2 ** max(0, attempts - 1)))


async def retry_or_fail(
    conn: AsyncConnection, job: Job, error: str, backoff_base: float, permanent: bool = False
) -> str:
    """Return a job to the queue with backoff, or fail it after its last attempt."""
    await lock_video(conn, job.video_id)
    if permanent or job.attempts >= job.max_attempts:
        if not await finish(conn, job, "failed", error):
            return "superseded"
        await _fail_video(conn, job, error[:1000])
        return "failed"
    now = time.time()
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET state = 'queued', error = :e, lease_until = NULL,"
            " run_after = :after, lease_token = lease_token + 1, update_time = :now"
            " WHERE id = :id AND lease_token = :t AND state = 'running'"
        ),
        {
            "e": error[:1000],
            "after": now + backoff(job.attempts, backoff_base),
            "now": now,
            "id": job.id,
            "t": job.lease_token,
        },
    )
    if result.rowcount != 1:
        return "superseded"  # cancelled, or taken over after its lease expired
    await videos.transition(conn, job.video_id, VideoStatus.TRANSCODE_QUEUED.value)
    return "retry"


async def _fail_video(conn: AsyncConnection, job: Job, error: str) -> None:
    """transcode_failed; an import whose source never arrived is upload_failed instead."""
    vid = job.video_id
    if await videos.transition(conn, vid, VideoStatus.TRANSCODE_FAILED.value, error=error):
        return
    if job.kind == "import":
        # Still `uploading`: the state machine allows only upload_failed from there.
        await videos.transition(conn, vid, VideoStatus.UPLOAD_FAILED.value, error=error)


async def give_back(conn: AsyncConnection, job: Job) -> bool:
    """Return a job untouched (graceful shutdown): runnable at once, the attempt not counted."""
    await lock_video(conn, job.video_id)
    now = time.time()
    result = await conn.execute(
        text(
            "UPDATE transcode_job SET state = 'queued', lease_until = NULL, run_after = :now,"
            " attempts = GREATEST(attempts - 1, 0), lease_token = lease_token + 1,"
            " update_time = :now WHERE id = :id AND lease_token = :t AND state = 'running'"
        ),
        {"now": now, "id": job.id, "t": job.lease_token},
    )
    if result.rowcount == 1:
        await videos.transition(conn, job.video_id, VideoStatus.TRANSCODE_QUEUED.value)
    return result.rowcount == 1


async def reap(
    conn: AsyncConnection, backoff_base: float, limit: int = 100
) -> list[tuple[int, str]]:
    """Requeue (with backoff) or fail jobs whose lease expired; returns (job id, outcome)."""
    now = time.time()
    expired = await conn.execute(
        text(
            "SELECT id, video_id FROM transcode_job WHERE state = 'running'"
            " AND lease_until < :now LIMIT :lim"
        ),
        {"now": now, "lim": limit},
    )
    outcomes = []
    # Videos in id order, each before its job (see lock_video): no deadlock with the API.
    for job_id, vid in sorted(((int(r[0]), int(r[1])) for r in expired), key=lambda r: r[::-1]):
        await lock_video(conn, vid)
        row = (
            await conn.execute(
                text(
                    f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE id = :id"
                    " AND state = 'running' AND lease_until < :now FOR UPDATE SKIP LOCKED"
                ),
                {"id": job_id, "now": now},
            )
        ).first()
        if row is None:
            continue  # renewed, finished or cancelled since the plain read
        job = _job(row)
        outcome = await retry_or_fail(
            conn, job, f"TranscodeAbandoned: lease expired (attempt {job.attempts})", backoff_base
        )
        outcomes.append((job.id, outcome))
    return outcomes


async def list_jobs(conn: AsyncConnection, which: str, stuck_after: float) -> list[Job]:
    """Jobs an operator looks at: open, stuck (queued long or lease expired), failed, or all."""
    now = time.time()
    where = {
        # What an operator should look at: failed, stuck, running and queued (not done ones).
        "open": "state IN ('failed', 'running', 'queued')",
        "failed": "state = 'failed'",
        "queued": "state = 'queued'",
        "running": "state = 'running'",
        "all": "1 = 1",
        "stuck": "(state = 'running' AND lease_until < :now)"
        " OR (state = 'queued' AND run_after < :old)",
    }[which]
    rows = await conn.execute(
        text(f"SELECT {JOB_COLUMNS} FROM transcode_job WHERE {where} ORDER BY id DESC LIMIT 500"),
        {"now": now, "old": now - stuck_after},
    )
    return [_job(r) for r in rows]


async def requeue(conn: AsyncConnection, job_id: int) -> bool:
    """Put a failed, cancelled or stuck job back at the head of its priority, attempts reset."""
    job = await get_job(conn, job_id)
    if job is None:
        return False
    await lock_video(conn, job.video_id)
    now = time.time()
    await conn.execute(
        text(
            "UPDATE transcode_job SET state = 'queued', attempts = 0, run_after = 0, error = NULL,"
            " lease_until = NULL, lease_token = lease_token + 1, update_time = :now"
            " WHERE id = :id"
        ),
        {"now": now, "id": job_id},
    )
    await videos.transition(conn, job.video_id, VideoStatus.TRANSCODE_QUEUED.value)
    return True


async def video_state_fix(conn: AsyncConnection) -> int:
    """Videos left in transcode_queued/transcoding with no live job get a job again (safety net)."""
    rows = await conn.execute(
        text(
            "SELECT v.id, v.app_id, v.task_priority FROM video v WHERE v.deleted_at IS NULL"
            " AND v.parent_id IS NULL AND v.status IN ('transcode_queued', 'transcoding')"
            " AND v.update_time < :old AND NOT EXISTS (SELECT 1 FROM transcode_job j"
            " WHERE j.video_id = v.id AND j.state IN ('queued', 'running')) LIMIT 50"
        ),
        {"old": int(time.time()) - 60},
    )
    fixed = 0
    for vid, app_id, priority in list(rows):
        await conn.execute(
            text(
                "INSERT INTO transcode_job (app_id, video_id, kind, priority, state, max_attempts,"
                " run_after, params, create_time, update_time)"
                " VALUES (:app, :vid, 'transcode', :prio, 'queued', 4, 0, '{}', :now, :now)"
            ),
            {"app": app_id, "vid": vid, "prio": priority, "now": time.time()},
        )
        fixed += 1
    return fixed
