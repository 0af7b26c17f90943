"""Creating and looking up apps (the CLI's `vasset apps` commands)."""

from __future__ import annotations

import secrets

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.apps import repository as apps
from vasset.auth.verify import announce_app_change
from vasset.redis_client import REDIS_DOWN

log = structlog.get_logger(__name__)


async def create_app_keys(engine: AsyncEngine, name: str) -> dict:
    """Create an app with a fresh key pair; the secret is shown only here."""
    app_key = "ak_" + secrets.token_hex(10)
    # Hex, so a secret never starts with "-" (command lines would read it as an option).
    app_secret = secrets.token_hex(32)
    async with engine.begin() as conn:
        app_id = await apps.insert_app(conn, name[:128], app_key, app_secret)
    return {"id": app_id, "name": name, "app_key": app_key, "app_secret": app_secret}


async def find_app_by_name(engine: AsyncEngine, name: str) -> dict | None:
    """The first app with this name, secret included (for the local demo only)."""
    async with engine.begin() as conn:
        row = await apps.app_by_name(conn, name)
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "app_key": row.app_key, "app_secret": row.app_secret}


async def set_enabled(
    engine: AsyncEngine, app_key: str, enabled: bool, redis=None, redis_prefix: str = "vasset:"
) -> bool:
    """Enable or disable an app key, and tell every API process at once; True if it exists."""
    async with engine.begin() as conn:
        found = await apps.set_enabled(conn, app_key, enabled)
    if redis is not None:
        # After the commit, so a process that sees the new generation reads the new row.
        try:
            await announce_app_change(redis, redis_prefix)
        except REDIS_DOWN as exc:
            log.warning("app_change_not_announced", app_key=app_key, error=str(exc))
    return found


async def set_default_ttl(engine: AsyncEngine, app_key: str, ttl: int) -> bool:
    """Give an app's new videos a lifetime of ttl seconds (0: kept); True if the app exists."""
    from vasset.videos.retention import check_ttl

    try:
        seconds = check_ttl(ttl) if ttl else None
    except errors.InvalidParameter as exc:
        raise errors.InvalidParameter(f"{exc.message}, or 0 for none") from None
    async with engine.begin() as conn:
        return await apps.set_default_ttl(conn, app_key, seconds)
