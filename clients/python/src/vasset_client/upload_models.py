"""Typed answers of the upload calls (limits, init, parts, resume, tickets) and the uploader's
result; models.py re-exports them, so `vasset_client.models` still names every model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vasset_client.model_base import Model

__all__ = [
    "DirectUrls",
    "InitResult",
    "Limits",
    "PartResult",
    "PartUrl",
    "ResumeState",
    "UploadResult",
    "UploadTicket",
]


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
class UploadTicket(Model):
    """POST /video/upload/ticket: hand ``ticket`` to a tus / IETF client (docs/TUS.md)."""

    ticket: str = ""
    expires_at: int = 0
    endpoint: str = "/files/"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


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
