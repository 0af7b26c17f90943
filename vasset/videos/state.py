"""The video lifecycle as one explicit state machine (pure)."""

from __future__ import annotations

from enum import StrEnum

from vasset.lifecycle import Machine


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
    # queued -> queued: a new request (or the safety net) replaces the queued job.
    S.TRANSCODE_QUEUED: frozenset({S.TRANSCODING, S.TRANSCODE_FAILED, S.TRANSCODE_QUEUED}),
    # transcoding -> transcode_queued: a crashed or timed-out attempt goes back to the queue.
    S.TRANSCODING: frozenset({S.TRANSCODE_SUCCEEDED, S.TRANSCODE_FAILED, S.TRANSCODE_QUEUED}),
    S.TRANSCODE_SUCCEEDED: frozenset({S.PLAYABLE, S.TRANSCODE_QUEUED}),
    S.TRANSCODE_FAILED: frozenset({S.TRANSCODE_QUEUED}),
    S.PLAYABLE: frozenset({S.TRANSCODE_QUEUED}),
}

VIDEO = Machine("video", TRANSITIONS)

#: Statuses a transcode (or retranscode) may be requested from.
TRANSCODABLE = frozenset(s for s, moves in TRANSITIONS.items() if S.TRANSCODE_QUEUED in moves)


def can_transition(current: str, target: str) -> bool:
    """Whether the lifecycle allows current -> target."""
    return VIDEO.allows(VideoStatus(current), VideoStatus(target))
