"""Direct SQL for tests that need to see or bend the durable record."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def sql(env: dict[str, str], query: str, **params) -> list[tuple]:
    """Run one statement against the test database; returns rows (empty for writes)."""

    async def run() -> list[tuple]:
        engine = create_async_engine(env["VASSET_DATABASE_URL"], poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(query), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def drop_database(database_url: str) -> None:
    """Drop the database a VASSET_DATABASE_URL names (test and bench clean-up)."""
    from vasset.db import create_engine

    base, name = database_url.rsplit("/", 1)

    async def drop() -> None:
        engine = create_engine(base + "/", pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        finally:
            await engine.dispose()

    asyncio.run(drop())


@asynccontextmanager
async def migrated_engine(database_url: str, tag: str) -> AsyncIterator[AsyncEngine]:
    """An engine of a new, migrated database named after database_url plus tag; dropped after."""
    from vasset.db import create_engine, ensure_database, upgrade

    url = f"{database_url}_{tag}{secrets.token_hex(3)}"
    await ensure_database(url)
    engine = create_engine(url, pool_size=4)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, url)
