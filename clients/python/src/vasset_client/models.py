"""Typed answers of the API; every model keeps the full JSON answer in `raw`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

M = TypeVar("M", bound="Model")

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


class Model:
    """Shared construction from a JSON object (unknown keys stay in `raw` only)."""

    raw: dict[str, Any]

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        """Build from an API answer; missing keys take the field default."""
        names = {f.name for f in dataclasses.fields(cls)} - {"raw"}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in names}
        kwargs["raw"] = dict(data)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The answer as the server sent it."""
        return dict(self.raw)


@dataclass
class Limits(Model):
    """GET /video/upload/limits."""

    max_file_size: int = 0
    min_part_size: int = 0
    max_part_size: int = 0
    max_part_count: int = 10_000
    upload_ttl: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def smallest_part_size(self, fsize: int) -> int:
        """The smallest psize that keeps fsize within max_part_count parts."""
        return max(self.min_part_size, -(-fsize // max(1, self.max_part_count)))

    def choose_part_size(self, fsize: int, wanted: int | None = None) -> int:
        """A psize within the limits, as close to wanted (default 8 MiB) as they allow."""
        psize = max(wanted or 8 << 20, self.smallest_part_size(fsize))
        if self.max_part_size:
            psize = min(psize, self.max_part_size)
        return max(1, psize)


@dataclass
class PartUrl(Model):
    """A presigned URL to PUT one part straight to storage (direct uploads)."""

    pseq: int = 0
    url: str = ""
    size: int | None = None
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _part_urls(data: Mapping[str, Any]) -> list[PartUrl] | None:
    urls = data.get("part_urls")
    return None if urls is None else [PartUrl.from_dict(u) for u in urls]


@dataclass
class InitResult(Model):
    """POST /video/upload/init: a started upload, or an instant one (`instant`, `vid`)."""

    status: str = ""
    upload_id: str | None = None
    vid: int | None = None
    instant: bool = False
    size: int | None = None
    md5: str | None = None
    part_size: int | None = None
    part_count: int | None = None
    expires_at: int | None = None
    upload_token: str | None = None
    direct: bool = False
    part_urls: list[PartUrl] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitResult:
        """Build from an API answer, part URLs typed."""
        init = super().from_dict(data)
        init.part_urls = _part_urls(data)
        return init


@dataclass
class DirectUrls(Model):
    """GET /video/upload/direct/urls: fresh part URLs (and `missing` when none were named)."""

    upload_id: str | None = None
    part_count: int | None = None
    missing: list[int] | None = None
    part_urls: list[PartUrl] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DirectUrls:
        """Build from an API answer, part URLs typed."""
        urls = super().from_dict(data)
        urls.part_urls = _part_urls(data) or []
        return urls


@dataclass
class PartResult(Model):
    """PUT /video/upload/upload: progress, or the completion answer (`completed`)."""

    upload_id: str | None = None
    pseq: int | None = None
    received: int | None = None
    part_count: int | None = None
    offset: int | None = None
    status: str | None = None
    vid: int | None = None
    md5: str | None = None
    size: int | None = None
    missing: list[int] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def completed(self) -> bool:
        """True when this answer completed the upload."""
        return self.status == "uploaded" and self.vid is not None


@dataclass
class ResumeState(Model):
    """GET /video/upload/resume."""

    status: str = ""
    upload_id: str | None = None
    vid: int | None = None
    size: int | None = None
    part_size: int | None = None
    part_count: int | None = None
    received: int | None = None
    missing: list[int] = field(default_factory=list)
    offset: int | None = None
    expires_at: int | None = None
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


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
class UploadTicket(Model):
    """POST /video/upload/ticket: hand ``ticket`` to a tus / IETF client (docs/TUS.md)."""

    ticket: str = ""
    expires_at: int = 0
    endpoint: str = "/files/"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


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
class UploadResult(Model):
    """What Uploader.run() returns: the uploaded video."""

    vid: int = 0
    status: str = "uploaded"
    md5: str | None = None
    size: int | None = None
    instant: bool = False
    upload_id: str | None = None
    resumed: bool = False
    parts_sent: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-friendly dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw"}


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
