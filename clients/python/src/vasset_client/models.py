"""Typed answers of the API; every model keeps the full JSON answer in `raw`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vasset_client.model_base import Model
from vasset_client.upload_models import (
    DirectUrls,
    InitResult,
    Limits,
    PartResult,
    PartUrl,
    ResumeState,
    UploadResult,
)
from vasset_client.upload_models import UploadTicket as UploadTicket

__all__ = [
    "Deleted",
    "DirectUrls",
    "InitResult",
    "Limits",
    "MediaInfo",
    "PartResult",
    "PartUrl",
    "PlayInfo",
    "PlayUrl",
    "Rendition",
    "ResumeState",
    "Snapshot",
    "Snapshots",
    "TranscodeResult",
    "UploadResult",
    "VideoStatus",
]

#: Status values in the lifecycle's order (API.md).
STATUSES = (
    "uploading",
    "uploaded",
    "upload_failed",
    "transcode_queued",
    "transcoding",
    "transcode_succeeded",
    "transcode_failed",
    "playable",
)


@dataclass
class VideoStatus(Model):
    """GET /video/status."""

    vid: int = 0
    status: str = ""
    playable: bool = False
    progress: int = 0
    error: str | None = None
    #: Unix seconds the server deletes the video at (a ttl); None: kept.
    delete_at: int | None = None
    #: "partial": HLS playable while the transcode continues; "complete": every rendition.
    ladder: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Rendition(Model):
    """One rendition in the mediainfo answer."""

    definition: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None
    bitrate: int | None = None
    status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class MediaInfo(Model):
    """GET /video/mediainfo."""

    vid: int = 0
    source_name: str | None = None
    file_size: int | None = None
    md5: str | None = None
    status: str | None = None
    duration: int | None = None
    video_width: int | None = None
    video_height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bitrate: int | None = None
    frame_rate: float | str | None = None
    rotation: int | None = None
    format: str | None = None
    #: Upload-Metadata a tus / IETF client sent (other than the file name).
    metadata: dict[str, str] | None = None
    renditions: list[Rendition] = field(default_factory=list)
    #: Unix seconds the server deletes the video at (a ttl); None: kept.
    delete_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaInfo:
        """Build from an API answer, renditions typed."""
        info = super().from_dict(data)
        info.renditions = [Rendition.from_dict(r) for r in data.get("renditions") or []]
        return info


@dataclass
class Deleted(Model):
    """POST /video/delete."""

    vid: int = 0
    deleted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class TranscodeResult(Model):
    """POST /video/transcode and /video/retranscode."""

    vid: int = 0
    status: str = ""
    #: template=a,b: [{"template", "vid"}] of each output (the first is vid itself).
    outputs: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class PlayUrl(Model):
    """One entry of play_urls."""

    url: str = ""
    definition: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None
    size: int | None = None
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Caption(Model):
    """One caption track: a signed URL of its WebVTT file."""

    lang: str = ""
    label: str = ""
    url: str = ""
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Captions(Model):
    """GET /video/captions."""

    vid: int = 0
    captions: list[Caption] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Captions:
        """Build from an API answer, tracks typed."""
        info = super().from_dict(data)
        info.captions = [Caption.from_dict(c) for c in data.get("captions") or []]
        return info


@dataclass
class PlayInfo(Model):
    """GET /video/playurl."""

    vid: int = 0
    status: str | None = None
    duration: int | None = None
    cover_url: str | None = None
    play_urls: list[PlayUrl] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlayInfo:
        """Build from an API answer, play URLs and caption tracks typed."""
        info = super().from_dict(data)
        info.play_urls = [PlayUrl.from_dict(u) for u in data.get("play_urls") or []]
        info.captions = [Caption.from_dict(c) for c in data.get("captions") or []]
        return info


@dataclass
class Snapshot(Model):
    """One snapshot image."""

    index: int = 0
    url: str = ""
    time: int | float | None = None
    width: int | None = None
    height: int | None = None
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Snapshots(Model):
    """GET /video/snapshot."""

    vid: int = 0
    cover_index: int | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshots:
        """Build from an API answer, snapshots typed."""
        info = super().from_dict(data)
        info.snapshots = [Snapshot.from_dict(s) for s in data.get("snapshots") or []]
        return info


@dataclass
class VideoSummary(Model):
    """One video in the list answer."""

    vid: int = 0
    source_name: str = ""
    status: str = ""
    playable: bool = False
    duration: int | None = None
    file_size: int = 0
    create_time: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class VideoPage(Model):
    """GET /video/list: one page, newest first; next_cursor is None on the last page."""

    videos: list[VideoSummary] = field(default_factory=list)
    next_cursor: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoPage:
        """Build from an API answer, videos typed."""
        page = super().from_dict(data)
        page.videos = [VideoSummary.from_dict(v) for v in data.get("videos") or []]
        return page
