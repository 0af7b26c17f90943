"""A lease-slot semaphore in Redis that caps FFmpeg processes globally and per node.

Each holder is a member of two sorted sets (global and node) scored by its lease expiry, so a
holder killed with SIGKILL frees its slot when the lease runs out: nothing leaks, unlike an
INCR/DECR counter. Redis losing the sets (restart, FLUSHALL, failover) must not let new
holders in beside FFmpeg processes that are still running, so an epoch key marks when the
sets were (re)created and new acquisitions wait one full lease after that while live holders
re-register through their renewals. The three keys share one hash tag (vasset/redis_keys.py), so
each script runs on one Redis Cluster node.
"""

from __future__ import annotations

import time

from vasset import redis_keys
from vasset.redis_client import AnyRedis

_ACQUIRE = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  redis.call('SET', KEYS[3], ARGV[1])
  epoch = ARGV[1]
end
if now < tonumber(epoch) + grace then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[6]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[6])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[6])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[6])
redis.call('ZADD', KEYS[2], now + lease, ARGV[6])
return 1
"""

# Renewal re-registers a holder the sets forgot (Redis restarted), if there is room.
_RENEW = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
if not redis.call('GET', KEYS[3]) then redis.call('SET', KEYS[3], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[5]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[5])
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
return 1
"""

_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class SlotSemaphore:
    """Global and per-node FFmpeg slots; every method is one atomic Lua call."""

    def __init__(
        self,
        redis: AnyRedis,
        prefix: str,
        node: str,
        global_limit: int,
        node_limit: int,
        lease: float = 15.0,
    ) -> None:
        self.redis = redis
        self.global_key = redis_keys.slots_global(prefix)
        self.node_key = redis_keys.slots_node(prefix, node)
        self.epoch_key = redis_keys.slots_epoch(prefix)
        self.global_limit = global_limit
        self.node_limit = node_limit
        self.lease = lease

    def _keys(self) -> list[str]:
        return [self.global_key, self.node_key, self.epoch_key]

    async def acquire(self, holder: str) -> int:
        """1 if a slot is now held, 0 if none is free, -1 while recovering from a Redis reset."""
        return int(
            await self.redis.eval(
                _ACQUIRE,
                3,
                *self._keys(),
                time.time(),
                self.lease,
                self.lease,
                self.global_limit,
                self.node_limit,
                holder,
            )
        )

    async def renew(self, holder: str) -> bool:
        """Extend the holder's lease (re-registering it after a reset); False if it was lost."""
        return bool(
            await self.redis.eval(
                _RENEW,
                3,
                *self._keys(),
                time.time(),
                self.lease,
                self.global_limit,
                self.node_limit,
                holder,
            )
        )

    async def release(self, holder: str) -> None:
        """Free the holder's slot."""
        await self.redis.eval(_RELEASE, 2, self.global_key, self.node_key, holder)

    async def holders(self) -> list[str]:
        """Holders whose lease has not expired (for operators and tests)."""
        members = await self.redis.zrangebyscore(self.global_key, time.time(), "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]
