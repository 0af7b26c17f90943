"""Spending nonces (and counting per-app rates) in Redis, batched across concurrent requests.

Each signed call needs one Redis write. Under load, the requests that arrive within one
event-loop turn share one pipeline, so Redis costs one round trip per batch instead of one
per request; a lone request waits only for the next loop turn. Every batch also reads one
watched key (the announced app generation), so callers learn of app changes for free.

On one Redis (standalone or behind Sentinel) a batch is one Lua script call: one command to pack
and one reply to parse, where a pipeline costs redis-py a command and a timed read per entry
(a quarter of a playurl call's CPU before). On a Redis Cluster the keys of a batch live on many
nodes, so the batch is a pipeline, which redis-py splits by node; a nonce and its app's rate
window share a hash tag (vasset/redis_keys.py), so they land on one node together.
"""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster

from vasset.redis_client import AnyRedis

#: The watched value before any batch has read it (never equal to anything Redis returns).
NEVER = object()

#: Batches in flight at once. Requests that arrive meanwhile wait for one to come back and go
#: together in the next (group commit): a busy process makes few, large round trips.
MAX_IN_FLIGHT = 1

#: KEYS: the nonce keys, then the rate window keys, then the watched key (when ARGV[4] is 1).
#: ARGV: nonce TTL, number of nonce keys, number of rate keys, whether a key is watched.
#: Answers one 1/0 per nonce (fresh or spent), the count per rate window, then the watched value.
SPEND_SCRIPT = """
local ttl, nonces, rates = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, nonces do
  out[i] = redis.call('SET', KEYS[i], '1', 'NX', 'EX', ttl) and 1 or 0
end
for i = nonces + 1, nonces + rates do
  out[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], 2)
end
if ARGV[4] == '1' then
  out[nonces + rates + 1] = redis.call('GET', KEYS[nonces + rates + 1])
end
return out
"""


class NonceBatcher:
    """SET nonce NX EX (plus INCR/EXPIRE of a rate window) for many requests at once."""

    def __init__(self, redis: AnyRedis, nonce_ttl: int, watch_key: str | None = None) -> None:
        self._redis = redis
        self._ttl = nonce_ttl
        self._watch_key = watch_key
        #: The watched key's value as of the latest batch (NEVER until one has run).
        self.seen: object = NEVER
        self._pending: list[tuple[str | None, str | None, asyncio.Future]] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task] = set()  # strong references until each finishes
        self._script = (
            None if isinstance(redis, RedisCluster) else redis.register_script(SPEND_SCRIPT)
        )

    async def spend(self, nonce_key: str, rate_key: str | None = None) -> tuple[bool, int]:
        """(nonce was fresh, calls in the rate window so far); Redis errors propagate."""
        fresh, calls, _ = await self.spend_and_watch(nonce_key, rate_key)
        return fresh, calls

    async def spend_and_watch(
        self, nonce_key: str, rate_key: str | None = None
    ) -> tuple[bool, int, object]:
        """As spend, plus the watched key's value read in the same round trip."""
        return await self._enqueue(nonce_key, rate_key)

    async def watched(self) -> object:
        """The watched key's current value (rides along with the next batch)."""
        _, _, value = await self._enqueue(None, None)
        return value

    async def _enqueue(self, nonce_key: str | None, rate_key: str | None):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((nonce_key, rate_key, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._pending or len(self._flushes) >= MAX_IN_FLIGHT:
            return  # a batch coming back starts the next one
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task) -> None:
        self._flushes.discard(task)
        self._start_flush()

    async def _flush(self, batch: list[tuple[str | None, str | None, asyncio.Future]]) -> None:
        try:
            if self._script is None:
                fresh, calls, watched = await self._pipeline(batch)
            else:
                fresh, calls, watched = await self._scripted(batch)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.seen = watched
        nonce_at = rate_at = 0
        for nonce_key, rate_key, future in batch:
            spent_fresh = False
            if nonce_key is not None:
                spent_fresh = bool(fresh[nonce_at])
                nonce_at += 1
            count = 0
            if rate_key is not None:
                count = int(calls[rate_at])
                rate_at += 1
            if not future.done():
                future.set_result((spent_fresh, count, watched))

    async def _scripted(self, batch) -> tuple[list, list, object]:
        """(per-nonce freshness, per-window counts, watched value) in one script call."""
        nonces = [n for n, _, _ in batch if n is not None]
        rates = [r for _, r, _ in batch if r is not None]
        keys = nonces + rates
        if self._watch_key is not None:
            keys.append(self._watch_key)
        args = [self._ttl, len(nonces), len(rates), 1 if self._watch_key is not None else 0]
        assert self._script is not None
        out = await self._script(keys=keys, args=args)
        watched = out[len(keys) - 1] if self._watch_key is not None else None
        return out[: len(nonces)], out[len(nonces) : len(nonces) + len(rates)], watched

    async def _pipeline(self, batch) -> tuple[list, list, object]:
        """The same three answers from a pipeline (Redis Cluster: keys on many nodes)."""
        pipe = self._redis.pipeline(transaction=False)
        for nonce_key, _, _ in batch:
            if nonce_key is not None:
                pipe.set(nonce_key, b"1", nx=True, ex=self._ttl)
        for _, rate_key, _ in batch:
            if rate_key is not None:
                pipe.incr(rate_key)
                pipe.expire(rate_key, 2)
        if self._watch_key is not None:
            pipe.get(self._watch_key)
        results = await pipe.execute()
        nonces = sum(1 for n, _, _ in batch if n is not None)
        rates = results[nonces : len(results) - (self._watch_key is not None)]
        watched = results[-1] if self._watch_key is not None else None
        return results[:nonces], rates[::2], watched
