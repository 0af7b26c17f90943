"""A lease-slot semaphore in Redis that caps FFmpeg processes globally and per node.

Each holder is a member of two sorted sets (global and node) scored by its lease expiry, so a
holder killed with SIGKILL frees its slot when the lease runs out: nothing leaks, unlike an
INCR/DECR counter. Redis losing the sets (restart, FLUSHALL, failover) must not let new
holders in beside FFmpeg processes that are still running, so an epoch key marks when the
sets were (re)created and new acquisitions wait one full lease after that while live holders
re-register through their renewals.

A failover loses data more quietly: the sets survive on the promoted replica, but a slot the old
master granted after the promotion (before Sentinel demoted it) is gone, and its holder runs
FFmpeg that no set counts. So the epoch also names the master's replication id, which changes on
every promotion and restart: a script that meets a new id starts a new epoch, and the same
one-lease wait lets the forgotten holders re-register before anyone new gets in. The three keys
share one hash tag (vasset/redis_keys.py), so each script runs on one Redis Cluster node.
"""

from __future__ import annotations

import time

from vasset import redis_keys
from vasset.redis_client import AnyRedis

# The epoch is "<start> <replication id>"; returns when the current epoch started. An epoch
# without an id (set by an older vasset, or opened by hand) adopts this master's id.
_EPOCH = """
local function epoch_start(key, now)
  local info = redis.pcall('INFO', 'replication')
  local id = type(info) == 'string' and string.match(info, 'master_replid:(%w+)') or ''
  local value = redis.call('GET', key)
  local start, seen
  if value then start, seen = string.match(value, '^(%S+)%s*(%S*)$') end
  if not start or not tonumber(start) or (id ~= '' and seen ~= '' and seen ~= id) then
    redis.call('SET', key, now .. ' ' .. id)
    return tonumber(now)
  end
  if seen == '' and id ~= '' then redis.call('SET', key, start .. ' ' .. id) end
  return tonumber(start)
end
"""

_ACQUIRE = (
    _EPOCH
    + """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
if now < epoch_start(KEYS[3], ARGV[1]) + grace then return -1 end
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
)

# Renewal re-registers a holder the sets forgot (a restart or failover), if there is room; it
# starts the new epoch too, so the wait begins as soon as any worker reaches the new master.
_RENEW = (
    _EPOCH
    + """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
epoch_start(KEYS[3], ARGV[1])
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
)

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
