"""Query parameters and answers of /video/captions."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from vasset.captions.formats import MAX_LABEL, MAX_LANG
from vasset.http.schemas import Answer
from vasset.playback.schemas import Expires
from vasset.videos.schemas import Vid

Lang = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=MAX_LANG,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$",
        description="BCP-47 language tag (en, pt-BR, zh-Hans); stored in conventional case",
        examples=["en"],
    ),
]


class CaptionPutParams(msgspec.Struct):
    """Query of PUT /video/captions (the body is the WebVTT or SRT file)."""

    vid: Vid
    lang: Lang
    label: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=MAX_LABEL,
                description="what players show (default: the language's name, else the tag);"
                " printable, no double quotes",
                examples=["English"],
            ),
        ]
        | None
    ) = None


class CaptionListParams(msgspec.Struct):
    """Query of GET /video/captions."""

    vid: Vid
    expires: Expires = None


class CaptionDeleteParams(msgspec.Struct):
    """Query of POST /video/captions/delete."""

    vid: Vid
    lang: Lang


class CaptionStored(Answer):
    """Answer of PUT /video/captions."""

    vid: int
    lang: str
    label: str
    source_format: Annotated[
        Literal["vtt", "srt"], msgspec.Meta(description="what was sent; stored as WebVTT")
    ]
    cues: int
    size: Annotated[int, msgspec.Meta(description="bytes of the stored WebVTT file")]


class Caption(Answer):
    """One caption track: a signed URL of its WebVTT file."""

    lang: str
    label: str
    url: str
    expires_at: int


class CaptionList(Answer):
    """Answer of GET /video/captions."""

    vid: int
    captions: list[Caption]


class CaptionDeleted(Answer):
    """Answer of POST /video/captions/delete."""

    vid: int
    lang: str
    deleted: Literal[True]
