"""The video lifecycle as one explicit state machine, and how much of its ladder is out (pure)."""

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


class Ladder(StrEnum):
    """How much of a video's rendition ladder is published (``media_info.ladder``).

    ``partial``: HLS of the lowest rendition(s) is playable while the transcode continues (the
    video stays transcoding, or transcode_queued when an attempt is retried); ``complete``:
    every rendition, MP4 and HLS, is published (status playable).
    """

    NONE = "none"
    PARTIAL = "partial"
    COMPLETE = "complete"


L = Ladder

LADDER_TRANSITIONS: dict[Ladder, frozenset[Ladder]] = {
    L.NONE: frozenset({L.PARTIAL, L.COMPLETE}),
    # partial -> partial: a retried attempt switches the video to its own fresh partial set;
    # partial -> none: the transcode failed for good, the partial set is retired.
    L.PARTIAL: frozenset({L.PARTIAL, L.COMPLETE, L.NONE}),
    # Never complete -> partial: a retranscode keeps the old ladder until the new one is whole.
    L.COMPLETE: frozenset({L.COMPLETE}),
}

LADDER = Machine("ladder", LADDER_TRANSITIONS)


def ladder_of(media_info: dict, has_renditions: bool) -> Ladder:
    """The ladder state of a video from its media_info and whether it has live renditions."""
    if not has_renditions:
        return L.NONE
    # "none" with renditions: a read that saw them just before a failure withdrew them.
    # Videos published before progressive publishing have renditions and no "ladder": complete.
    return Ladder(media_info.get("ladder") or L.COMPLETE)
