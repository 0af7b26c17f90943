"""Every query of the app family (app, server_secret); only this module runs them."""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

APP_COLUMNS = "id, name, app_key, app_secret, enabled"


class AppRow(msgspec.Struct, frozen=True):
    """One row of the app table (create_time left out: nothing reads it)."""

    id: int
    name: str
    app_key: str
    app_secret: str
    enabled: bool


def _app(row: Row | None) -> AppRow | None:
    if row is None:
        return None
    return AppRow(**{**row._mapping, "enabled": bool(row.enabled)})


async def app_by_key(conn: AsyncConnection, app_key: str) -> AppRow | None:
    """The app with this key, enabled or not."""
    sql = f"SELECT {APP_COLUMNS} FROM app WHERE app_key = :k"
    return _app((await conn.execute(text(sql), {"k": app_key})).first())


async def app_by_id(conn: AsyncConnection, app_id: int) -> AppRow | None:
    """The app with this id, enabled or not."""
    sql = f"SELECT {APP_COLUMNS} FROM app WHERE id = :i"
    return _app((await conn.execute(text(sql), {"i": app_id})).first())


async def app_by_name(conn: AsyncConnection, name: str) -> AppRow | None:
    """The first app with this name."""
    sql = f"SELECT {APP_COLUMNS} FROM app WHERE name = :n ORDER BY id LIMIT 1"
    return _app((await conn.execute(text(sql), {"n": name})).first())


async def insert_app(conn: AsyncConnection, name: str, app_key: str, app_secret: str) -> int:
    """Record an enabled app; returns its id."""
    result = await conn.execute(
        text(
            "INSERT INTO app (name, app_key, app_secret, enabled, create_time)"
            " VALUES (:n, :k, :s, 1, :t)"
        ),
        {"n": name, "k": app_key, "s": app_secret, "t": int(time.time())},
    )
    return int(result.lastrowid)


async def set_enabled(conn: AsyncConnection, app_key: str, enabled: bool) -> bool:
    """Enable or disable an app key; True if it exists."""
    result = await conn.execute(
        text("UPDATE app SET enabled = :e WHERE app_key = :k"), {"e": int(enabled), "k": app_key}
    )
    return result.rowcount == 1


async def default_ttl(conn: AsyncConnection, app_id: int) -> int | None:
    """Seconds new videos of the app live, or None (kept until deleted)."""
    row = (
        await conn.execute(text("SELECT default_ttl FROM app WHERE id = :i"), {"i": app_id})
    ).first()
    return int(row.default_ttl) if row and row.default_ttl else None


async def set_default_ttl(conn: AsyncConnection, app_key: str, ttl: int | None) -> bool:
    """Set (or with None clear) an app's default ttl; True if the app exists."""
    result = await conn.execute(
        text("UPDATE app SET default_ttl = :t WHERE app_key = :k"), {"t": ttl, "k": app_key}
    )
    return result.rowcount == 1


async def server_secret(conn: AsyncConnection, name: str, candidate: str) -> str:
    """The named secret; candidate becomes it if there is none yet (concurrent callers agree)."""
    await conn.execute(
        text("INSERT IGNORE INTO server_secret (name, secret, create_time) VALUES (:n, :s, :t)"),
        {"n": name, "s": candidate, "t": int(time.time())},
    )
    row = (
        await conn.execute(text("SELECT secret FROM server_secret WHERE name = :n"), {"n": name})
    ).one()  # the INSERT IGNORE above guarantees the row
    return str(row.secret)
