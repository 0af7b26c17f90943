"""The event types a client can receive, and which video move raises which (pure)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event type (docs/EVENTS.md)."""

    UPLOAD_CREATED = "upload.created"
    UPLOAD_COMPLETED = "upload.completed"
    UPLOAD_FAILED = "upload.failed"
    TRANSCODE_QUEUED = "video.transcode.queued"
    TRANSCODE_STARTED = "video.transcode.started"
    TRANSCODE_PROGRESS = "video.transcode.progress"
    RENDITION_READY = "video.rendition.ready"
    SNAPSHOTS_READY = "video.snapshots.ready"
    PLAYABLE = "video.playable"
    TRANSCODE_SUCCEEDED = "video.transcode.succeeded"
    TRANSCODE_FAILED = "video.transcode.failed"
    DELETED = "video.deleted"


#: The event a video's move to a status raises (every move of the lifecycle passes here).
#: Keyed by the status strings of videos/state.py (which imports lifecycle, which calls us).
ON_VIDEO_STATUS: dict[str, EventType] = {
    "uploaded": EventType.UPLOAD_COMPLETED,
    "upload_failed": EventType.UPLOAD_FAILED,
    "transcode_queued": EventType.TRANSCODE_QUEUED,
    "transcoding": EventType.TRANSCODE_STARTED,
    "transcode_succeeded": EventType.TRANSCODE_SUCCEEDED,
    "transcode_failed": EventType.TRANSCODE_FAILED,
    "playable": EventType.PLAYABLE,
}

#: Seconds between two progress events of one video (the 100 % one is always written).
PROGRESS_EVERY = 5.0


def parse_types(value: str) -> list[str]:
    """A comma list of event types, or ["*"]; ValueError names an unknown type."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items == ["*"]:
        return items
    known = {t.value for t in EventType}
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise ValueError(f"unknown event types: {', '.join(unknown) or '(none)'}")
    return list(dict.fromkeys(items))
