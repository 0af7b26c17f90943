"""The base of the SDK's errors: the class every error derives from, and its code registry."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from time import time
from typing import Any, ClassVar

__all__ = ["BY_CODE", "RetryAfter", "VassetError", "parse_retry_after"]

#: Every class that owns a code, by code (filled as the classes are defined).
BY_CODE: dict[str, type[VassetError]] = {}


class VassetError(Exception):
    """Base of every error the SDK raises; `code` is the API's stable identifier."""

    default_code: ClassVar[str] = ""
    default_status: ClassVar[int] = 0

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status: int = self.default_status if status is None else status
        self.code: str = code or self.default_code or f"HTTP{self.status}"
        self.message = message or self.code
        self.request_id = request_id
        self.body: dict[str, Any] = dict(body or {})
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default_code" in cls.__dict__:
            BY_CODE.setdefault(cls.default_code, cls)

    def __str__(self) -> str:
        extra = [f"HTTP {self.status}"] if self.status else []
        if self.request_id:
            extra.append(f"request {self.request_id}")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.code}: {self.message}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly dict (the API's error body shape)."""
        return {
            **self.body,
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "request_id": self.request_id,
        }


class RetryAfter:
    """Mixin: the Retry-After header in seconds."""

    headers: dict[str, str]

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait, if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
