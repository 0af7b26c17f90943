"""The transcode job queue in MySQL: enqueue, claim (SKIP LOCKED), lease, finish, reap.

The queue decides; its SQL lives in transcode.repository (jobs) and videos.repository.
Lock order everywhere: the video row first, then its jobs (see videos.repository.lock_video).
"""

from __future__ import annotations

import time

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors
from vasset.errors import FailureCode
from vasset.lifecycle import LostRace, Transition
from vasset.tracing.spans import current_traceparent
from vasset.transcode import repository as jobs
from vasset.transcode.jobstate import JobState
from vasset.transcode.progressive import drop_partial
from vasset.transcode.repository import Add, Job, holds, list_jobs, live_attempts
from vasset.upload import replace
from vasset.videos import repository as videos
from vasset.videos.state import TRANSCODABLE, VideoStatus

# holds, list_jobs and live_attempts are the repository's reads, re-exported for the callers.
__all__ = [
    "Job",
    "cancel_for_video",
    "claim",
    "enqueue",
    "finish",
    "give_back",
    "heartbeat",
    "holds",
    "list_jobs",
    "live_attempts",
    "reap",
    "requeue",
    "retry_or_fail",
    "video_state_fix",
]

log = structlog.get_logger(__name__)

J = JobState
V = VideoStatus

# Queued jobs one claim looks at: those whose video is being enqueued or claimed are skipped.
CLAIM_CANDIDATES = 20
#: Errors are stored in VARCHAR(1024) columns.
ERROR_LIMIT = 1000
#: Job kinds that make their video's source first (the video waits as uploading meanwhile).
SOURCE_JOBS = frozenset({"import", "clip"})


async def enqueue(
    conn: AsyncConnection,
    app_id: int,
    vid: int,
    kind: str,
    priority: int,
    max_attempts: int,
    params: dict | None = None,
) -> int:
    """Queue a job for a video and move the video to transcode_queued; returns the job id.

    The one way a job comes into being: the API, auto-transcode on upload, imports and the
    safety net all pass max_attempts from settings.job_max_attempts. With tracing on, the job
    keeps the enqueuing request's traceparent, so the worker's spans join that trace.
    """
    video = await videos.get_video(conn, vid, for_update=True)
    if video is None:
        raise errors.VideoNotFound()
    # One live job per video: a new request supersedes queued or running ones.
    await cancel_for_video(conn, vid, reason="superseded")
    job_id = await jobs.insert_job(
        conn, app_id, vid, kind, priority, max_attempts, params, current_traceparent()
    )
    if kind in SOURCE_JOBS and video.status == V.UPLOADING:
        return job_id  # the video stays uploading while its source is fetched (API.md)
    await videos.move_video(
        conn, vid, video.status, V.TRANSCODE_QUEUED, task_priority=priority, progress=0, error=None
    )
    return job_id


async def cancel_for_video(conn: AsyncConnection, vid: int, reason: str = "cancelled") -> int:
    """Cancel queued and running jobs of a video; running workers see it at their next heartbeat."""
    now = time.time()
    live = await jobs.live_jobs_of_video(conn, vid)
    for job_id, state in live:
        await jobs.move_job(conn, job_id, state, J.CANCELLED, error=reason, finished_at=now)
    return len(live)


async def claim(conn: AsyncConnection, worker: str, lease: float) -> Job | None:
    """Take the best runnable job (priority, then age) and lease it; one short transaction.

    Candidates come from a plain read; each is then locked video first, job second, both with
    SKIP LOCKED, so a claim never waits on (or deadlocks with) an enqueue or another worker.
    """
    now = time.time()
    for job_id, vid in await jobs.claim_candidates(conn, now, CLAIM_CANDIDATES):
        if not await videos.lock_video(conn, vid, skip_locked=True):
            continue
        queued = await jobs.lock_runnable(conn, job_id, now)
        if queued is None:
            continue  # claimed, cancelled or superseded since the plain read
        video = await videos.get_video(conn, vid)
        status = video.status if video else None
        # An import starts while its video is uploading; anything else waits in the queue.
        fetch_first = status == V.UPLOADING and queued.kind in SOURCE_JOBS
        if status != V.TRANSCODE_QUEUED and not fetch_first:
            # The video moved on without this job (e.g. rows older than this rule): never run it.
            await jobs.move_job(
                conn, job_id, J.QUEUED, J.CANCELLED, error=f"video is {status}", finished_at=now
            )
            log.warning("job_dropped", job=job_id, vid=vid, video_status=status)
            continue
        await jobs.move_job(
            conn,
            job_id,
            J.QUEUED,
            J.RUNNING,
            attempts=Add(1),
            lease_until=now + lease,
            worker=worker,
            started_at=now,
        )
        if not fetch_first:
            await videos.move_video(conn, vid, V.TRANSCODE_QUEUED, V.TRANSCODING)
        job = await jobs.get_job(conn, job_id)
        assert job is not None
        return job
    return None


async def heartbeat(conn: AsyncConnection, job: Job, lease: float, progress: int) -> bool:
    """Extend the lease and record progress; False when the token no longer holds."""
    await videos.lock_video(conn, job.video_id)
    if not await jobs.renew_lease(conn, job, lease, progress):
        return False
    await videos.set_progress(conn, job.video_id, progress)
    return True


async def finish(
    conn: AsyncConnection, job: Job, state: JobState, error: str | None = None
) -> Transition:
    """End a running job (succeeded or failed) under its token; LostRace if it is not ours."""
    extra = {"progress": 100} if state == J.SUCCEEDED else {}
    return await jobs.move_job(
        conn,
        job.id,
        J.RUNNING,
        state,
        token=job.lease_token,
        error=error,
        lease_until=None,
        finished_at=time.time(),
        **extra,
    )


def backoff(attempts: int, base: float) -> float:
    """Seconds before retry number ``attempts`` (exponential, capped at an hour)."""
    return min(3600.0, base * (2 ** max(0, attempts - 1)))


async def retry_or_fail(
    conn: AsyncConnection, job: Job, error: str, backoff_base: float, permanent: bool = False
) -> str:
    """Return a job to the queue with backoff, or fail it after its last attempt."""
    await videos.lock_video(conn, job.video_id)
    error = error[:ERROR_LIMIT]
    last = permanent or job.attempts >= job.max_attempts
    try:
        if last:
            await finish(conn, job, J.FAILED, error)
        else:
            after = time.time() + backoff(job.attempts, backoff_base)
            await jobs.move_job(
                conn,
                job.id,
                J.RUNNING,
                J.QUEUED,
                token=job.lease_token,
                error=error,
                lease_until=None,
                run_after=after,
            )
    except LostRace:
        # Cancelled, superseded or taken over after its lease expired: no longer ours to settle.
        return "superseded"
    if last:
        await _fail_video(conn, job, error)
        return "failed"
    await _video_back_to_queue(conn, job)
    return "retry"


async def _fail_video(conn: AsyncConnection, job: Job, error: str) -> None:
    """transcode_failed; an import whose source never arrived is upload_failed instead."""
    video = await videos.get_video(conn, job.video_id)
    if video is None:
        return
    if video.status == V.UPLOADING:
        # Still `uploading`: the state machine allows only upload_failed from there.
        await videos.move_video(conn, video.id, V.UPLOADING, V.UPLOAD_FAILED, error=error)
    else:
        await videos.move_video(
            conn, video.id, (V.TRANSCODE_QUEUED, V.TRANSCODING), V.TRANSCODE_FAILED, error=error
        )
        # A partial ladder published early goes with it (docs/API.md: failed is not playable).
        await drop_partial(conn, video.id)
        # A new source (replace=) that failed is dropped: the video keeps its old one.
        await replace.abandon(conn, video.id)


async def _video_back_to_queue(conn: AsyncConnection, job: Job) -> None:
    """The video of a job put back in the queue waits as transcode_queued (an import: uploading)."""
    video = await videos.get_video(conn, job.video_id)
    if video is not None and video.status != V.UPLOADING:
        await videos.move_video(
            conn, video.id, (V.TRANSCODING, V.TRANSCODE_QUEUED), V.TRANSCODE_QUEUED
        )


async def give_back(conn: AsyncConnection, job: Job) -> bool:
    """Return a job untouched (graceful shutdown): runnable at once, the attempt not counted."""
    await videos.lock_video(conn, job.video_id)
    try:
        await jobs.move_job(
            conn,
            job.id,
            J.RUNNING,
            J.QUEUED,
            token=job.lease_token,
            lease_until=None,
            run_after=time.time(),
            attempts=Add(-1),
        )
    except LostRace:
        return False  # cancelled or taken over meanwhile: nothing left to give back
    await _video_back_to_queue(conn, job)
    return True


async def reap(
    conn: AsyncConnection, backoff_base: float, limit: int = 100
) -> list[tuple[int, str]]:
    """Requeue (with backoff) or fail jobs whose lease expired; returns (job id, outcome)."""
    now = time.time()
    outcomes = []
    expired = await jobs.expired_leases(conn, now, limit)
    # Videos in id order, each before its job (see lock_video): no deadlock with the API.
    for job_id, vid in sorted(expired, key=lambda r: r[::-1]):
        await videos.lock_video(conn, vid)
        job = await jobs.lock_expired(conn, job_id, now)
        if job is None:
            continue  # renewed, finished or cancelled since the plain read
        outcome = await retry_or_fail(
            conn,
            job,
            f"{FailureCode.TRANSCODE_ABANDONED}: lease expired (attempt {job.attempts})",
            backoff_base,
        )
        outcomes.append((job.id, outcome))
    return outcomes


async def requeue(conn: AsyncConnection, job_id: int) -> bool:
    """Put a job back at the head of its priority, attempts reset; False if it cannot run again.

    A job cannot run again when its video is gone, or is neither waiting for an import nor in
    a status a transcode may start from (e.g. upload_failed).
    """
    job = await jobs.get_job(conn, job_id)
    if job is None or not await videos.lock_video(conn, job.video_id):
        return False
    job = await jobs.get_job(conn, job_id)
    video = await videos.get_video(conn, job.video_id) if job else None
    if job is None or video is None:
        return False
    fetch_first = job.kind in SOURCE_JOBS and video.status == V.UPLOADING
    if not fetch_first and video.status not in TRANSCODABLE:
        return False
    # One live job per video: requeueing an old job supersedes a newer one.
    for other, state in await jobs.live_jobs_of_video(conn, video.id):
        if other != job_id:
            await jobs.move_job(
                conn, other, state, J.CANCELLED, error="superseded", finished_at=time.time()
            )
    await jobs.move_job(
        conn,
        job_id,
        job.state,
        J.QUEUED,
        attempts=0,
        run_after=0,
        error=None,
        lease_until=None,
    )
    if not fetch_first:
        await videos.move_video(conn, video.id, video.status, V.TRANSCODE_QUEUED)
    return True


async def video_state_fix(conn: AsyncConnection, max_attempts: int) -> int:
    """Videos left in transcode_queued/transcoding with no live job get a job again (safety net)."""
    fixed = 0
    for vid, app_id, priority in await jobs.videos_without_live_job(conn, int(time.time()) - 60):
        video = await videos.get_video(conn, vid, for_update=True)
        # Checked again under the lock: an enqueue may have come in since the plain read.
        waiting = video is not None and video.status in (V.TRANSCODE_QUEUED, V.TRANSCODING)
        if not waiting or await jobs.has_live_job(conn, vid):
            continue
        await enqueue(conn, app_id, vid, "transcode", priority, max_attempts)
        fixed += 1
    return fixed
