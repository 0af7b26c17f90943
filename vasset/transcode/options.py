"""What one transcode is asked to make: the typed options a job carries from request to worker.

The HTTP layer (transcode, retranscode, upload init, tickets, templates) builds one
``TranscodeOptions``; the queue stores it as the job's JSON params (``to_params``); the worker
reads it back (``from_params``) and the pipeline and the pure FFmpeg command builders decide from
it. Absent fields mean "the service's defaults", so a job queued before a field existed reads the
same as one that did not ask.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Codec = Literal["h264", "hevc", "av1"]
Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]


class WatermarkOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """An app's image asset drawn over every rendition."""

    asset_id: int
    position: Position = "top-right"
    margin: float = 0.02  # fraction of the video width
    opacity: float = 1.0
    scale: float = 0.15  # the watermark's width as a fraction of the video width


class TextOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """UTF-8 text drawn over every rendition between start_ms and end_ms."""

    text: str
    position: Position = "bottom-left"
    size: float = 0.05  # font size as a fraction of the video height
    colour: str = "#ffffff"  # #RRGGBB or #RRGGBBAA (the HTTP layer turns names into hex)
    start_ms: int | None = None
    end_ms: int | None = None


class TranscodeOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """Everything a transcode job was asked for beyond the service's defaults."""

    definitions: str | None = None  # comma list, checked against the ladder
    codec: Codec | None = None  # None: H.264
    hls: bool | None = None  # None: the service's VASSET_HLS
    audio: bool | None = None  # audio-only renditions (M4A and an HLS variant)
    storyboard: bool | None = None  # None: the service's default
    watermark: WatermarkOptions | None = None
    text: TextOptions | None = None
    template: str | None = None  # the template's name, recorded for operators

    def to_params(self) -> dict[str, Any]:
        """The JSON-ready dict stored in transcode_job.params (defaults left out)."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TranscodeOptions:
        """Read a job's params back; keys of other concerns (src, dst) are ignored."""
        known = {k: v for k, v in params.items() if k in cls.__struct_fields__}
        return msgspec.convert(known, cls)
