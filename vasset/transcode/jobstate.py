"""The transcode job lifecycle as one explicit state machine (pure)."""

from __future__ import annotations

from enum import StrEnum

from vasset.lifecycle import Machine


class JobState(StrEnum):
    """transcode_job.state values (stored as these strings)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


J = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # queued -> queued: an operator requeues a job stuck in the queue (run at once).
    J.QUEUED: frozenset({J.RUNNING, J.CANCELLED, J.QUEUED}),
    # running -> queued: a retry with backoff, a graceful give-back, or an operator's requeue.
    J.RUNNING: frozenset({J.SUCCEEDED, J.FAILED, J.QUEUED, J.CANCELLED}),
    # An operator may requeue any finished job (`vasset jobs requeue`).
    J.SUCCEEDED: frozenset({J.QUEUED}),
    J.FAILED: frozenset({J.QUEUED}),
    J.CANCELLED: frozenset({J.QUEUED}),
}

JOB = Machine("job", TRANSITIONS)

#: States of a job that holds (or waits for) the video's one live attempt.
LIVE = (J.QUEUED, J.RUNNING)
