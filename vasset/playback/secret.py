"""The server-side URL signing secret, shared by every instance through MySQL."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.db import transaction


async def url_secret(engine: AsyncEngine, name: str = "play_url") -> bytes:
    """The named secret, created on first use (INSERT IGNORE keeps concurrent creators agreed)."""
    async with transaction(engine) as conn:
        await conn.execute(
            text(
                "INSERT IGNORE INTO server_secret (name, secret, create_time) VALUES (:n, :s, :t)"
            ),
            {"n": name, "s": secrets.token_hex(32), "t": int(time.time())},
        )
        row = (
            await conn.execute(
                text("SELECT secret FROM server_secret WHERE name = :n"), {"n": name}
            )
        ).one()  # the INSERT IGNORE above guarantees the row
    return row[0].encode()
