"""Redis access: hot state only (nonces, locks, slots, rates); never the source of truth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vasset.errors import ServiceUnavailable

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def create_redis(url: str) -> aioredis.Redis:
    """A pooled client with short timeouts, so a dead Redis fails fast instead of hanging."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=15,
        retry_on_timeout=False,
        decode_responses=False,
    )


@asynccontextmanager
async def redis_guard() -> AsyncIterator[None]:
    """Turn Redis connection failures into 503 ServiceUnavailable."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise ServiceUnavailable("redis is unavailable; retry later") from exc
