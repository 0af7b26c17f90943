"""HTTP routes of /webhooks/*: endpoints and deliveries (signed)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
