"""Creating and looking up apps (the CLI's `vasset apps` commands)."""

from __future__ import annotations

import secrets
import time

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.auth.verify import announce_app_change
from vasset.redis_client import REDIS_DOWN

log = structlog.get_logger(__name__)


async def create_app_keys(engine: AsyncEngine, name: str) -> dict:
    """Create an app with a fresh key pair; the secret is shown only here."""
    app_key = "ak_" + secrets.token_hex(10)
    # Hex, so a secret never starts with "-" (command lines would read it as an option).
    app_secret = secrets.token_hex(32)
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "INSERT INTO app (name, app_key, app_secret, enabled, create_time)"
                " VALUES (:n, :k, :s, 1, :t)"
            ),
            {"n": name[:128], "k": app_key, "s": app_secret, "t": int(time.time())},
        )
    return {"id": int(result.lastrowid), "name": name, "app_key": app_key, "app_secret": app_secret}


async def find_app_by_name(engine: AsyncEngine, name: str) -> dict | None:
    """The first app with this name, secret included (for the local demo only)."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                text("SELECT id, name, app_key, app_secret FROM app WHERE name = :n ORDER BY id"),
                {"n": name},
            )
        ).first()
    return dict(zip(("id", "name", "app_key", "app_secret"), row, strict=True)) if row else None


async def set_enabled(
    engine: AsyncEngine, app_key: str, enabled: bool, redis=None, redis_prefix: str = "vasset:"
) -> bool:
    """Enable or disable an app key, and tell every API process at once; True if it exists."""
    async with engine.begin() as conn:
        result = await conn.execute(
            text("UPDATE app SET enabled = :e WHERE app_key = :k"),
            {"e": int(enabled), "k": app_key},
        )
    if redis is not None:
        # After the commit, so a process that sees the new generation reads the new row.
        try:
            await announce_app_change(redis, redis_prefix)
        except REDIS_DOWN as exc:
            log.warning("app_change_not_announced", app_key=app_key, error=str(exc))
    return result.rowcount == 1
