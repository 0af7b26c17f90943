"""The video lifecycle as one explicit state machine (pure)."""

from __future__ import annotations

from enum import StrEnum

from vasset.errors import InvalidState


class VideoStatus(StrEnum):
    """video.status values, in the specification's order."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    UPLOAD_FAILED = "upload_failed"
    TRANSCODE_QUEUED = "transcode_queued"
    TRANSCODING = "transcoding"
    TRANSCODE_SUCCEEDED = "transcode_succeeded"
    TRANSCODE_FAILED = "transcode_failed"
    PLAYABLE = "playable"


S = VideoStatus

TRANSITIONS: dict[VideoStatus, frozenset[VideoStatus]] = {
    S.UPLOADING: frozenset({S.UPLOADED, S.UPLOAD_FAILED}),
    S.UPLOADED: frozenset({S.TRANSCODE_QUEUED, S.TRANSCODE_FAILED}),
    S.UPLOAD_FAILED: frozenset(),
    # transcode_failed from queued: the source turned out not to be a video at probe time.
    S.TRANSCODE_QUEUED: frozenset({S.TRANSCODING, S.TRANSCODE_FAILED}),
    # transcoding -> transcode_queued: a crashed or timed-out attempt goes back to the queue.
    S.TRANSCODING: frozenset({S.TRANSCODE_SUCCEEDED, S.TRANSCODE_FAILED, S.TRANSCODE_QUEUED}),
    S.TRANSCODE_SUCCEEDED: frozenset({S.PLAYABLE, S.TRANSCODE_QUEUED}),
    S.TRANSCODE_FAILED: frozenset({S.TRANSCODE_QUEUED}),
    S.PLAYABLE: frozenset({S.TRANSCODE_QUEUED}),
}


def can_transition(current: str, target: str) -> bool:
    """Whether the lifecycle allows current -> target (staying put is always allowed)."""
    cur, tgt = VideoStatus(current), VideoStatus(target)
    return cur == tgt or tgt in TRANSITIONS[cur]


def check_transition(current: str, target: str) -> VideoStatus:
    """The target status, or InvalidState when the lifecycle forbids the move."""
    if not can_transition(current, target):
        raise InvalidState(f"a video that is {current} cannot become {target}")
    return VideoStatus(target)


def sources_allowed(target: str) -> list[str]:
    """Every status from which target may be entered (for guarded SQL updates)."""
    tgt = VideoStatus(target)
    return [s.value for s, nxt in TRANSITIONS.items() if tgt in nxt or s == tgt]
