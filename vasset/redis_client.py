"""Redis access: hot state only (nonces, locks, slots, rates); never the source of truth.

One factory, redis_from_settings, builds the client for VASSET_REDIS_MODE: a standalone server,
a Redis Cluster (MOVED/ASK and failovers are followed by redis-py), or the master that Sentinel
names (a failover costs a reconnect and a retry, not a hang). Key names live in redis_keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vasset.errors import ServiceUnavailable

if TYPE_CHECKING:
    from vasset.settings import Settings

#: The client every service holds: whichever mode built it, the commands are the same.
AnyRedis: TypeAlias = aioredis.Redis | RedisCluster

#: Redis is down or moving: a connection failure, a timeout, a cluster without a slot's owner
#: (ClusterDownError, MasterDownError, SlotNotCoveredError), a slot in migration (TRYAGAIN), a
#: master Sentinel cannot name (MasterNotFoundError is a ConnectionError), or a write that reached
#: a master just demoted to replica (READONLY). All of them pass within a failover: 503, retry.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
    TryAgainError,
    ReadOnlyError,
    ConnectionError,
    OSError,
)

#: Seconds a command may wait on a socket; short, so a dead node fails fast.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


def create_redis(url: str, pool_size: int = 64, pool_timeout: float = 5.0) -> aioredis.Redis:
    """A pooled client of one standalone server, with short timeouts.

    The pool blocks: a burst larger than pool_size waits (up to pool_timeout seconds) for a
    connection instead of failing with MaxConnectionsError.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=15,
        retry_on_timeout=False,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)


def redis_from_settings(settings: Settings, pool_size: int | None = None) -> AnyRedis:
    """The client for settings.redis_mode (standalone, cluster or sentinel); connects lazily."""
    size = pool_size if pool_size is not None else settings.redis_pool_size
    if settings.redis_mode == "cluster":
        return _cluster(settings.redis_url, size)
    if settings.redis_mode == "sentinel":
        return _sentinel_master(settings, size)
    return create_redis(settings.redis_url, size, settings.redis_pool_timeout)


def _short_retry() -> Retry:
    """A few quick retries: enough to ride out a failover, never minutes of waiting."""
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), 4)


def _cluster(seed_url: str, pool_size: int) -> RedisCluster:
    """A Redis Cluster client discovered from any one node (redis-py follows MOVED/ASK)."""
    return RedisCluster.from_url(
        seed_url,
        # Per node, and not blocking: a burst beyond it is a MaxConnectionsError (503).
        max_connections=pool_size,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=15,
        retry=_short_retry(),
        decode_responses=False,
    )


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """VASSET_REDIS_SENTINELS ("host:port,host:port") as (host, port) pairs."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if item:
            host, _, port = item.rpartition(":")
            out.append((host.strip("[]") or "127.0.0.1", int(port or 26379)))
    return out


def _sentinel_master(settings: Settings, pool_size: int) -> aioredis.Redis:
    """A pooled client of the master that Sentinel currently names.

    VASSET_REDIS_URL still gives the database number and the credentials of the data nodes;
    its host is ignored. A write that reaches a demoted master is turned into a reconnect (the
    next connection asks Sentinel again) and retried a few times with short pauses.
    """
    from_url: dict = dict(parse_url(settings.redis_url))
    node_options = {key: from_url[key] for key in ("db", "username", "password") if key in from_url}
    sentinel = Sentinel(
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        **node_options,
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=BlockingSentinelPool,
        max_connections=pool_size,
        timeout=settings.redis_pool_timeout,
        health_check_interval=15,
        retry=_short_retry(),
        decode_responses=False,
    )


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's master discovery with the standalone pool's waiting for a free connection."""


@asynccontextmanager
async def redis_guard() -> AsyncIterator[None]:
    """Turn Redis connection failures (and failovers in progress) into 503 ServiceUnavailable."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise ServiceUnavailable("redis is unavailable; retry later") from exc
