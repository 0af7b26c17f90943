"""A Redis lease lock: one holder at a time, expiring by itself if the holder dies.

One key per lock (vasset/redis_keys.lock), so every script is single-slot on a Redis Cluster.
"""

from __future__ import annotations

import secrets

from vasset.redis_client import AnyRedis

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class LeaseLock:
    """SET NX PX with a random owner token; release and renew only by the owner."""

    def __init__(self, redis: AnyRedis, key: str, lease_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.lease_ms = lease_ms
        self.token = secrets.token_hex(16)

    async def acquire(self) -> bool:
        """Take the lock if free."""
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.lease_ms))

    async def renew(self) -> bool:
        """Extend the lease; False if it was lost."""
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.token, self.lease_ms))

    async def release(self) -> None:
        """Give the lock back if still held."""
        await self.redis.eval(_RELEASE, 1, self.key, self.token)
