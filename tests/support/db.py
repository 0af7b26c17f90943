"""Direct SQL for tests that need to see or bend the durable record."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
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
