"""Spending nonces (and counting per-app rates) in Redis, batched across concurrent requests.

Each signed call needs one Redis write. Under load, the requests that arrive within one
event-loop turn share one pipeline, so Redis costs one round trip per batch instead of one
per request; a lone request waits only for the next loop turn. Every batch also reads one
watched key (the announced app generation), so callers learn of app changes for free.

The pipeline is not a transaction: on a Redis Cluster redis-py splits it by node. A nonce and its
app's rate window share a hash tag (vasset/redis_keys.py), so they land on one node together.
"""

from __future__ import annotations

import asyncio

from vasset.redis_client import AnyRedis

#: The watched value before any batch has read it (never equal to anything Redis returns).
NEVER = object()


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
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[str | None, str | None, asyncio.Future]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for nonce_key, rate_key, _ in batch:
            if nonce_key is not None:
                pipe.set(nonce_key, b"1", nx=True, ex=self._ttl)
            if rate_key is not None:
                pipe.incr(rate_key)
                pipe.expire(rate_key, 2)
        if self._watch_key is not None:
            pipe.get(self._watch_key)
        try:
            results = await pipe.execute()
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        watched = results[-1] if self._watch_key is not None else None
        self.seen = watched
        i = 0
        for nonce_key, rate_key, future in batch:
            fresh = False
            if nonce_key is not None:
                fresh = bool(results[i])
                i += 1
            calls = 0
            if rate_key is not None:
                calls = int(results[i])
                i += 2
            if not future.done():
                future.set_result((fresh, calls, watched))
