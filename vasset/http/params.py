"""Query parameters into msgspec Structs: validate once, at the edge."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, TypeVar, cast

import msgspec

from vasset.auth.signing import parse_query
from vasset.errors import InvalidParameter, MissingParameter

T = TypeVar("T")

#: task_priority is a signed 32-bit INT column: anything outside it is InvalidParameter, not a 500.
Priority = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
#: Ids, sizes and counts are BIGINT-sized at most; larger numbers are refused at the edge.
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

_MISSING = re.compile(r"missing required field `(\w+)`")
_AT = re.compile(r"at `\$\.(\w+)`")


def query_dict(query_string: str) -> dict[str, str]:
    """First value of every query parameter."""
    out: dict[str, str] = {}
    for name, value in parse_query(query_string):
        out.setdefault(name, value)
    return out


@cache
def _field_names(model: type) -> frozenset[str]:
    """A Struct's field names (msgspec resolves annotations on every fields() call)."""
    return frozenset(f.name for f in msgspec.structs.fields(model))


def parse_params(query_string: str | bytes, model: type[T]) -> T:
    """Convert the query into model, mapping failures to MissingParameter / InvalidParameter."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    return convert_params(query_dict(query_string), model)


def convert_params(raw: dict[str, str], model: type[T]) -> T:
    """As parse_params, from a query already decoded into its first values."""
    fields = _field_names(cast(type, model))
    data = {k: v for k, v in raw.items() if k in fields and v != ""}
    try:
        return msgspec.convert(data, model, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if m := _MISSING.search(text):
            name = m.group(1)
            raise MissingParameter(f"missing required parameter: {name}", parameter=name) from None
        name = m.group(1) if (m := _AT.search(text)) else "parameter"
        raise InvalidParameter(f"invalid {name}: {text.split(' - ')[0]}", parameter=name) from None
