"""Redis access: hot state only (nonces, locks, slots, rates); never the source of truth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vasset.errors import ServiceUnavailable

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def create_redis(url: str, pool_size: int = 64, pool_timeout: float = 5.0) -> aioredis.Redis:
    """A pooled client with short timeouts, so a dead Redis fails fast instead of hanging.

    The pool blocks: a burst larger than pool_size waits (up to pool_timeout seconds) for a
    connection instead of failing with MaxConnectionsError.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=15,
        retry_on_timeout=False,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)


@asynccontextmanager
async def redis_guard() -> AsyncIterator[None]:
    """Turn Redis connection failures into 503 ServiceUnavailable."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise ServiceUnavailable("redis is unavailable; retry later") from exc
