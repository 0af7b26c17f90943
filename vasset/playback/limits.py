"""Download controls shared by every API instance through Redis: a global stream cap, app rates.

The cap is a lease-slot semaphore like the FFmpeg slots (vasset/transcode/slots.py): each stream
is a member of one sorted set scored by its lease expiry, renewed by one task per process, so an
instance killed with SIGKILL frees its streams when their leases run out. The per-app rate is a
virtual clock (GCRA): one key per app holds when the bytes reserved so far will have been sent
at the app's rate; a block may go once that time, minus one second of burst, has come.

Both fail open when Redis is down (a download is not worth an outage; the per-instance cap
still bounds each node), and skip Redis for a few seconds after a failure so a dead Redis
costs each stream no connect timeout.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors, redis_keys
from vasset.db import transaction
from vasset.redis_client import REDIS_DOWN
from vasset.storage.keys import layout_owner
from vasset.videos import repository as videos

log = structlog.get_logger(__name__)

#: Seconds a stream's slot outlives its instance (SIGKILL); renewed every third of it.
STREAM_LEASE = 10.0
#: Seconds of an app's rate a stream may send ahead of its pace (the first second of a stream).
RATE_BURST = 1.0
#: Seconds Redis is left alone after it failed (the controls are open meanwhile).
REDIS_PAUSE = 5.0

_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
return 1
"""

# Renewal re-adds a holder the set forgot (Redis restarted): it is streaming, so it counts.
_RENEW = """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
return 1
"""

_PACE = """
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local done = tat + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.6f', done), 'PX', math.ceil((done - now) * 1000) + 1000)
return string.format('%.6f', done - now - tonumber(ARGV[3]))
"""

#: A stream's pacer: asks for n bytes, answers the seconds to wait before sending them.
Pacer = Callable[[int], Awaitable[float]]


class RedisBreaker:
    """Remembers that Redis failed, so the next calls skip it for REDIS_PAUSE seconds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.paused_until = 0.0

    def open(self) -> bool:
        """Whether Redis may be asked now."""
        return time.monotonic() >= self.paused_until

    def failed(self, exc: BaseException) -> None:
        """Log once per pause and leave Redis alone for a while."""
        if self.open():
            log.warning("download_control_open", control=self.what, error=repr(exc))
        self.paused_until = time.monotonic() + REDIS_PAUSE


class GlobalStreams:
    """File streams across all API instances; one sorted set scored by lease expiry."""

    def __init__(
        self, redis: Redis | RedisCluster, prefix: str, limit: int, lease: float = STREAM_LEASE
    ) -> None:
        self.redis = redis
        self.key = redis_keys.streams_global(prefix)
        self.limit = limit
        self.lease = lease
        self.held: set[str] = set()
        self.breaker = RedisBreaker("stream_cap")
        self._renewer: asyncio.Task | None = None
        self._releases: set[asyncio.Task] = set()

    async def acquire(self) -> str | None:
        """The holder id of a slot now held, None if Redis is down, or Throttled at the cap."""
        if not self.breaker.open():
            return None
        holder = secrets.token_hex(8)
        try:
            got = await self.redis.eval(
                _ACQUIRE, 1, self.key, time.time(), self.lease, self.limit, holder
            )
        except REDIS_DOWN as exc:
            self.breaker.failed(exc)
            return None
        if not int(got):
            raise errors.Throttled(
                "too many concurrent file streams on this service; retry shortly", retry_after=1
            )
        self.held.add(holder)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())
        return holder

    def release(self, holder: str) -> None:
        """Free a slot now if a loop runs (else its lease runs out); never raises."""
        self.held.discard(holder)
        try:
            task = asyncio.get_running_loop().create_task(self._release(holder))
        except RuntimeError:  # no loop (a dropped response collected late): the lease ends it
            return
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, holder: str) -> None:
        try:
            await self.redis.zrem(self.key, holder)
        except REDIS_DOWN as exc:
            self.breaker.failed(exc)

    async def _renew_forever(self) -> None:
        """Extend the leases of this process's streams until it has none."""
        while self.held:
            await asyncio.sleep(self.lease / 3)
            holders = list(self.held)
            if not holders:
                break
            try:
                await self.redis.eval(_RENEW, 1, self.key, time.time() + self.lease, *holders)
            except REDIS_DOWN as exc:
                self.breaker.failed(exc)

    async def holders(self) -> int:
        """Streams whose lease has not expired, on every instance (for operators and tests)."""
        return int(await self.redis.zcount(self.key, time.time(), "+inf"))


class AppRates:
    """Bytes per second per app for local-disk streams, across instances."""

    def __init__(
        self, redis: Redis | RedisCluster, engine: AsyncEngine, prefix: str, rate: int
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.prefix = prefix
        self.rate = rate
        self.breaker = RedisBreaker("stream_rate")
        self._app_of_video: dict[int, int] = {}

    async def pacer(self, key: str) -> Pacer:
        """The pacer of a stream of key (its app's clock)."""
        app_id = await self._app_of(key)
        clock = redis_keys.stream_rate_clock(self.prefix, app_id)

        async def pace(size: int) -> float:
            if not self.breaker.open():
                return 0.0
            try:
                wait = await self.redis.eval(
                    _PACE, 1, clock, time.time(), size / self.rate, RATE_BURST
                )
            except REDIS_DOWN as exc:
                self.breaker.failed(exc)
                return 0.0
            return max(0.0, float(wait))

        return pace

    async def _app_of(self, key: str) -> int:
        """The app a stored key belongs to (0: outside the layout; all such keys share one)."""
        owner = layout_owner(key)
        if owner is None or not owner[1]:
            return 0
        kind, ident = owner
        if kind == "app":
            return ident
        app_id = self._app_of_video.get(ident)
        if app_id is None:
            async with transaction(self.engine) as conn:
                app_id = await videos.app_of_video(conn, ident) or 0
            if len(self._app_of_video) > 100_000:
                self._app_of_video.clear()
            self._app_of_video[ident] = app_id  # a video never changes app
        return app_id
