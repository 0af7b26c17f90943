"""After a transaction with events commits, wake the live streams of their apps via Redis.

A SQLAlchemy ``commit`` listener on the engine: the events themselves are already durable in
MySQL, so a publish that fails (Redis down) costs only latency: SSE streams poll the outbox too.
On a Redis Cluster a PUBLISH reaches subscribers on every node, so any node may carry it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import redis_keys
from vasset.events.outbox import PENDING
from vasset.redis_client import AnyRedis

log = structlog.get_logger(__name__)


def install(engine: AsyncEngine, redis: AnyRedis, prefix: str) -> None:
    """Publish each committed transaction's event apps (once per engine)."""
    tasks: set[asyncio.Task[None]] = set()

    def pending(conn: Any) -> set[int] | None:
        # An invalidated connection (the server went away) has no info left to read, and its
        # transaction's events died with it.
        if conn.invalidated:
            return None
        apps: set[int] | None = conn.info.pop(PENDING, None)
        return apps

    def committed(conn: Any) -> None:
        apps = pending(conn)
        if not apps:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a synchronous use of the engine: nobody is streaming from here
        task = loop.create_task(_publish(redis, prefix, sorted(apps)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def rolled_back(conn: Any) -> None:
        pending(conn)

    event.listen(engine.sync_engine, "commit", committed)
    event.listen(engine.sync_engine, "rollback", rolled_back)


async def _publish(redis: AnyRedis, prefix: str, apps: list[int]) -> None:
    try:
        for app_id in apps:
            await redis.publish(redis_keys.events_channel(prefix, app_id), b"1")
    except Exception as exc:  # Redis down: streams fall back to polling the outbox
        log.info("event_publish_failed", error=repr(exc))
