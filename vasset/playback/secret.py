"""The server-side URL signing secret, shared by every instance through MySQL."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.apps import repository as apps
from vasset.db import transaction


async def url_secret(engine: AsyncEngine, name: str = "play_url") -> bytes:
    """The named secret, created on first use (INSERT IGNORE keeps concurrent creators agreed)."""
    async with transaction(engine) as conn:
        secret = await apps.server_secret(conn, name, secrets.token_hex(32))
    return secret.encode()
