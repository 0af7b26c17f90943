"""Shapes every route shares: the error body, the signing parameters, status names.

Answers are msgspec Structs; `shaped` turns a service's dict into the one Struct of a route's
documented answers that it matches, so an answer that drifts from the contract fails loudly
(a 500 in tests) instead of reaching clients in a shape nobody documented.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, TypeVar, overload

import msgspec
from msgspec import UNSET, UnsetType

from vasset import errors
from vasset.videos.state import VideoStatus

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T", bound=msgspec.Struct)

#: Every value of video.status: the lifecycle's own enum, so the schema cannot drift from it.
VideoStatusName = VideoStatus

Md5Hex = Annotated[
    str, msgspec.Meta(description="MD5 hex digest", examples=["9e107d9d372bb6826bd81d3542a419d6"])
]


class Answer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every JSON answer: a key no Struct declares is a bug, not a new field."""


class Error(msgspec.Struct, kw_only=True):
    """The error body of every non-2xx JSON answer (docs/API.md, "Error codes")."""

    code: Annotated[
        str,
        msgspec.Meta(description="stable code; branch on it", examples=[errors.VideoNotFound.code]),
    ]
    message: Annotated[str, msgspec.Meta(description="human readable; never parse it")]
    request_id: Annotated[str, msgspec.Meta(description="the X-Request-Id of this answer")]
    # Extra fields some codes carry; more may be added (clients must ignore unknown keys).
    parameter: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    vid: int | UnsetType = UNSET
    offset: int | UnsetType = UNSET
    pseq: int | UnsetType = UNSET
    server_time: int | UnsetType = UNSET
    min_part_size: int | UnsetType = UNSET
    expected_size: int | UnsetType = UNSET
    md5: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    missing: list[int] | UnsetType = UNSET


class Health(Answer):
    """Answer of GET /health."""

    ok: bool


@cache
def _keys(model: type[msgspec.Struct]) -> tuple[frozenset[str], frozenset[str]]:
    """(every encoded field name, the required ones) of an answer Struct."""
    fields = msgspec.structs.fields(model)
    names = frozenset(f.encode_name for f in fields)
    required = frozenset(f.encode_name for f in fields if f.required)
    return names, required


@overload
def shaped(answer: dict[str, Any], model: type[S], /) -> S: ...
@overload
def shaped(answer: dict[str, Any], a: type[S], b: type[T], /) -> S | T: ...
@overload
def shaped(answer: dict[str, Any], /, *models: type[msgspec.Struct]) -> Any: ...
def shaped(answer: dict[str, Any], /, *models: type[msgspec.Struct]) -> Any:
    """The first of models whose fields cover answer's keys (and whose required keys it has)."""
    keys = answer.keys()
    for model in models:
        names, required = _keys(model)
        if keys <= names and required <= keys:
            return msgspec.convert(answer, model)
    raise TypeError(f"an answer with keys {sorted(keys)} matches none of {models}")
