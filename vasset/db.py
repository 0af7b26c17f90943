"""MySQL/MariaDB access: engine creation and the numbered migrations in sql/."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vasset.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

#: Numbered migrations ship inside the package (the checkout's top-level sql/ links here).
SQL_DIR = Path(__file__).resolve().parent / "migrations"

# ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: InnoDB gave up on this transaction, not on the
# data; the same transaction run again normally goes through.
LOCK_CONFLICTS = frozenset({1213, 1205})
TRANSACTION_ATTEMPTS = 5

T = TypeVar("T")


def create_engine(
    database_url: str, pool_size: int = 10, overflow: int | None = None
) -> AsyncEngine:
    """An async engine with pre-ping, so a restarted MySQL costs one retry, not an outage."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size * 2 if overflow is None else overflow,
        # Every use goes through engine.begin(), which commits or rolls back itself, so the
        # pool's extra ROLLBACK on return and a ping on every checkout are round trips for
        # nothing; a connection that died (MySQL restarted) fails one call with 503 and is
        # dropped from the pool, and pool_recycle retires idle ones before MySQL times them out.
        pool_pre_ping=False,
        pool_reset_on_return=None,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
    )


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether MySQL rolled the statement back for a deadlock or a lock wait timeout."""
    args: tuple = getattr(getattr(exc, "orig", None), "args", None) or ()
    return isinstance(exc, DBAPIError) and bool(args) and args[0] in LOCK_CONFLICTS


def _unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a database failure becomes, or None for an error that is a bug."""
    if isinstance(exc, DBAPIError) and is_lock_conflict(exc):
        return ServiceUnavailable("the database is busy; retry later")
    if isinstance(exc, OperationalError | ConnectionError | OSError):
        return ServiceUnavailable("the database is unavailable; retry later")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return ServiceUnavailable("the database is unavailable; retry later")
    return None


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One short transaction; connection failures and lock conflicts become 503."""
    try:
        async with engine.begin() as conn:
            yield conn
    except (DBAPIError, ConnectionError, OSError) as exc:
        unavailable = _unavailable(exc)
        if unavailable is None:
            raise
        raise unavailable from exc


async def run_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    attempts: int = TRANSACTION_ATTEMPTS,
) -> T:
    """work(conn) in one transaction, run again (with jitter) after a deadlock or lock timeout.

    work must have no effects outside the transaction: a conflict rolls all of it back.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except (DBAPIError, ConnectionError, OSError) as exc:
            if attempt < attempts and is_lock_conflict(exc):
                log.info("transaction_retried", attempt=attempt, error=str(exc)[:200])
                await asyncio.sleep(random.uniform(0.005, 0.02) * 2**attempt)
                continue
            unavailable = _unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc
    raise AssertionError("unreachable")


async def ensure_database(database_url: str) -> None:
    """Create the URL's database when it does not exist yet."""
    url = make_url(database_url)
    name = url.database
    if not name:
        return
    server = create_async_engine(url.set(database=""), pool_size=1)
    try:
        async with server.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        await server.dispose()


class MigrationsMissing(RuntimeError):
    """The migrations folder is empty or missing (a broken install)."""


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[int, str, str]]:
    """(number, name, sql) of every numbered migration, in order."""
    found = []
    for path in sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql")):
        found.append((int(path.name[:3]), path.name, path.read_text(encoding="utf-8")))
    return found


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements on semicolons (migrations keep them out of strings)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


async def upgrade(engine: AsyncEngine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every migration not applied yet; returns the names applied. Idempotent."""
    migrations = migration_files(sql_dir)
    if not migrations:
        # An install without its migrations must not report an empty, "successful" upgrade.
        raise MigrationsMissing(f"no migrations found in {sql_dir}")
    applied_now: list[str] = []
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migration ("
                " version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,"
                " applied_at BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
        )
        # A named lock keeps two instances starting at once from applying a migration twice.
        await conn.execute(text("SELECT GET_LOCK('vasset_migrate', 60)"))
        try:
            done = {
                row[0] for row in await conn.execute(text("SELECT version FROM schema_migration"))
            }
            for number, name, sql in migrations:
                if number in done:
                    continue
                for statement in split_statements(sql):
                    await conn.exec_driver_sql(statement)
                await conn.execute(
                    text("INSERT INTO schema_migration VALUES (:v, :n, :t)"),
                    {"v": number, "n": name, "t": int(time.time())},
                )
                applied_now.append(name)
                log.info("migration_applied", name=name)
        finally:
            await conn.execute(text("SELECT RELEASE_LOCK('vasset_migrate')"))
    return applied_now


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (readiness)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def pending_migrations(engine: AsyncEngine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Names of migrations the database has not applied (all of them without the table)."""
    async with engine.connect() as conn:
        exists = await conn.execute(
            text(
                "SELECT 1 FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_name = 'schema_migration'"
            )
        )
        done: set[int] = set()
        if exists.first() is not None:
            rows = await conn.execute(text("SELECT version FROM schema_migration"))
            done = {row.version for row in rows}
    return [name for number, name, _ in migration_files(sql_dir) if number not in done]
