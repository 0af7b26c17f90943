"""The base of every typed answer: built from the JSON answer, which it keeps in `raw`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["Model"]

M = TypeVar("M", bound="Model")


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
