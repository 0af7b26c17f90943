"""Query parameters and answers of /video/templates, and the template= parameter of other calls."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.assets.params import OverlayParams
from vasset.http.schemas import Answer
from vasset.transcode.options import Codec, TranscodeOptions

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"

Name = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^{_NAME}$",
        description="template name: 1-64 of A-Z a-z 0-9 _ . - (starts with a letter or digit;"
        " case-sensitive)",
        examples=["ad-hevc"],
    ),
]
#: template= of upload init, tickets and retranscode: one name.
TemplateName = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^{_NAME}$",
        description="a transcode template of the app; parameters given beside it override its"
        " options",
        examples=["ad-hevc"],
    ),
]
#: template= of POST /video/transcode: one name, or several (several outputs).
TemplateNames = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^{_NAME}(,{_NAME}){{0,7}}$",
        description="a transcode template of the app, or up to 8 as a comma list (with vid): the"
        " first transcodes vid itself, each further one a new video sharing vid's source;"
        " parameters given beside it override the templates' options",
        examples=["ad-hevc", "ad-720,ad-hevc"],
    ),
]
Flag = Annotated[int, msgspec.Meta(ge=0, le=1)]


class TemplateParams(OverlayParams, kw_only=True):
    """Query of POST /video/templates: the name and the options it keeps."""

    name: Name
    definitions: Annotated[
        str | None,
        msgspec.Meta(description="comma list of ladder definitions", examples=["360p,720p"]),
    ] = None
    codec: Annotated[
        Codec | None,
        msgspec.Meta(
            description="h264 (default), or hevc / av1: those renditions beside the H.264 ladder"
        ),
    ] = None
    hls: Annotated[
        Flag | None, msgspec.Meta(description="0 or 1: HLS off or on (default: VASSET_HLS)")
    ] = None
    audio: Annotated[
        Flag | None, msgspec.Meta(description="0: no audio-only rendition (default: when audio)")
    ] = None
    storyboard: Annotated[
        Flag | None, msgspec.Meta(description="0 or 1: storyboard off or on (default: service's)")
    ] = None

    def options(self) -> TranscodeOptions:
        """What the template keeps (absent parameters: the service's defaults)."""
        return TranscodeOptions(
            definitions=self.definitions,
            codec=self.codec,
            hls=None if self.hls is None else bool(self.hls),
            audio=None if self.audio is None else bool(self.audio),
            storyboard=None if self.storyboard is None else bool(self.storyboard),
            **self.overlay_options(),
        )


class NameParams(msgspec.Struct):
    """Query of POST /video/templates/delete."""

    name: Name


class Template(Answer):
    """One template: its name and the transcode options it keeps (defaults left out)."""

    name: str
    options: TranscodeOptions
    create_time: int
    update_time: int


class TemplateList(Answer):
    """Answer of GET /video/templates: the app's templates by name."""

    templates: list[Template]


class TemplateDeleted(Answer):
    """Answer of POST /video/templates/delete."""

    name: str
    deleted: Literal[True]


class Output(Answer):
    """One output of a transcode that named several templates."""

    template: str
    vid: int
