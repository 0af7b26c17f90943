"""Query parameters and answers of /video/transcode and /video/retranscode."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from vasset.assets.params import OverlayParams
from vasset.http.params import Id, Priority
from vasset.http.schemas import Answer
from vasset.templates.schemas import Flag, Output, TemplateName, TemplateNames
from vasset.transcode.options import Codec, TranscodeOptions
from vasset.videos.schemas import Ttl, Vid

Definitions = Annotated[
    str | None,
    msgspec.Meta(description="comma list of ladder definitions", examples=["360p,720p"]),
]
TaskPriority = Annotated[Priority | None, msgspec.Meta(description="task_priority (higher first)")]
StoryboardFlag = Annotated[
    Flag | None, msgspec.Meta(description="0 or 1: storyboard off or on (default: the service's)")
]
AudioFlag = Annotated[
    Flag | None, msgspec.Meta(description="0: no audio-only rendition (default: when audio)")
]
CodecParam = Annotated[
    Codec | None,
    msgspec.Meta(description="h264 (default), or hevc / av1: those renditions beside H.264"),
]


class TranscodeParams(OverlayParams):
    """Query of POST /video/transcode: vid, or src (and dst) to import a new video."""

    vid: Annotated[Id | None, msgspec.Meta(description="video to transcode")] = None
    src: Annotated[
        str | None,
        msgspec.Meta(
            description="source URI to import (http(s) from allowed hosts, or oss://BUCKET/key)"
        ),
    ] = None
    dst: Annotated[str | None, msgspec.Meta(description="recorded with the job")] = None
    priority: TaskPriority = None
    definitions: Definitions = None
    codec: CodecParam = None
    storyboard: StoryboardFlag = None
    audio: AudioFlag = None
    template: TemplateNames | None = None
    ttl: Annotated[Ttl | None, msgspec.Meta(description="with src: the new video's ttl")] = None

    def options(self) -> TranscodeOptions:
        """What the job is asked to make."""
        return _options(self, self.definitions, self.codec, self.storyboard, self.audio)


class RetranscodeParams(OverlayParams):
    """Query of POST /video/retranscode."""

    vid: Vid
    priority: TaskPriority = None
    definitions: Definitions = None
    codec: CodecParam = None
    storyboard: StoryboardFlag = None
    audio: AudioFlag = None
    template: TemplateName | None = None

    def options(self) -> TranscodeOptions:
        """What the job is asked to make."""
        return _options(self, self.definitions, self.codec, self.storyboard, self.audio)


def _options(
    params: OverlayParams,
    definitions: str | None,
    codec: Codec | None,
    storyboard: int | None,
    audio: int | None,
) -> TranscodeOptions:
    return TranscodeOptions(
        definitions=definitions,
        codec=codec,
        storyboard=None if storyboard is None else bool(storyboard),
        audio=None if audio is None else bool(audio),
        **params.overlay_options(),
    )


class Queued(Answer):
    """A transcode (or import) is queued."""

    vid: int
    status: Literal["transcode_queued"]
    #: template=a,b: each template's video (the first is vid itself).
    outputs: list[Output] | UnsetType = UNSET
