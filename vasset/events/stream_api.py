"""HTTP route of GET /video/events: live events as Server-Sent Events (signed)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
