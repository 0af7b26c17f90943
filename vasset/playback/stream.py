"""Streaming a stored object to one client with backpressure, under stream caps and app rates.

Memory per stream stays small and bounded: a block is read only after the server accepted every
send of the previous one (granian's ``send`` waits once its per-response queue is full), and
nothing is read ahead. The stream's slot is held until the last chunk was handed over, or the client
is gone (``http.disconnect``), so the cap counts slow readers for as long as they read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import structlog
from litestar import Request, Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.playback.limits import AppRates, GlobalStreams, Pacer
from vasset.settings import Settings

log = structlog.get_logger(__name__)

#: Bytes per ``send``. granian 2.8 keeps ~15 sends of a response queued before ``send`` waits
#: (beyond the kernel's socket buffer), so a stalled reader pins ~15 of these there. Each send
#: costs a Python round trip: 16 KiB sends took 2.7x the CPU per GiB of 256 KiB ones, but
#: 64 KiB ones let 200 stalled readers grow RSS past 200 MiB (bench/playback_memory.py).
SEND_SIZE = 32 << 10
#: Bytes per file read (one buffer per stream); a read that must wait for the disk is a thread
#: hop, so one read feeds several sends.
READ_SIZE = 4 * SEND_SIZE


class StreamSlot:
    """One taken stream slot; released exactly once (a dropped, never-sent response too)."""

    __slots__ = ("_limiter", "holder")

    def __init__(self, limiter: StreamLimiter, holder: str | None = None) -> None:
        self._limiter: StreamLimiter | None = limiter
        #: The global cap's holder id (None: no global cap, or Redis was down).
        self.holder = holder

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        if self._limiter is not None:
            limiter, self._limiter = self._limiter, None
            limiter.active -= 1
            if self.holder is not None and limiter.global_streams is not None:
                limiter.global_streams.release(self.holder)

    def __del__(self) -> None:
        self.release()


class StreamLimiter:
    """Caps concurrent file streams of this instance (the original "max 50 downloads"), of all
    instances together (a global cap), and paces each app's streams (a per-app rate)."""

    def __init__(
        self,
        limit: int,
        global_streams: GlobalStreams | None = None,
        rates: AppRates | None = None,
    ) -> None:
        self.limit = limit
        self.active = 0
        self.global_streams = global_streams
        self.rates = rates

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: Redis | RedisCluster, engine: AsyncEngine
    ) -> StreamLimiter:
        """The limiter the settings ask for (Redis is used only when a shared control is on)."""
        prefix = settings.redis_prefix
        cap = settings.max_concurrent_streams_global
        rate = settings.stream_rate_per_app
        return cls(
            settings.max_concurrent_streams,
            GlobalStreams(redis, prefix, cap) if cap > 0 else None,
            AppRates(redis, engine, prefix, rate) if rate > 0 else None,
        )

    async def acquire(self) -> StreamSlot:
        """Take a stream slot or raise Throttled."""
        if self.active >= self.limit:
            raise errors.Throttled("too many concurrent file streams; retry shortly", retry_after=1)
        self.active += 1
        slot = StreamSlot(self)
        if self.global_streams is not None:
            try:
                slot.holder = await self.global_streams.acquire()
            except BaseException:
                slot.release()
                raise
        return slot

    async def pacer(self, key: str) -> Pacer | None:
        """The pacer of a stream of key, or None when no per-app rate is set."""
        return None if self.rates is None else await self.rates.pacer(key)


async def _disconnect(receive: Receive) -> None:
    """Return once the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ObjectBody:
    """The bytes of one response: the first chunk (already read) and the rest of the range."""

    def __init__(
        self,
        first: bytes | memoryview,
        rest: AsyncIterator[bytes | memoryview],
        length: int,
        slot: StreamSlot,
        pace: Pacer | None = None,
    ) -> None:
        self.first = first
        self.rest = rest
        self.length = length
        self.slot = slot
        self.pace = pace

    async def send(self, send: Send, receive: Receive) -> None:
        """Send every chunk, each after the previous one was accepted; stop when the client goes."""
        gone = asyncio.ensure_future(_disconnect(receive))
        sent = 0
        try:
            block: bytes | memoryview | None = self.first
            self.first = b""
            while block is not None and not gone.done():
                if self.pace is not None and not await self._paced(len(block), gone):
                    break
                view = memoryview(block)
                for at in range(0, len(block), SEND_SIZE):
                    # A copy: a block may be a view of a buffer that the next read overwrites,
                    # and granian takes bytes fastest.
                    piece = bytes(view[at : at + SEND_SIZE])
                    sent += len(piece)
                    more = sent < self.length
                    await send({"type": "http.response.body", "body": piece, "more_body": more})
                    if not more:
                        return
                    if gone.done():
                        break
                del view
                block = await anext(self.rest, None)
            if not gone.done():
                # The object got shorter while being read; end the body (the client sees it short).
                log.warning("stream_short", sent=sent, expected=self.length)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    async def _paced(self, size: int, gone: asyncio.Future) -> bool:
        """Wait until the app's rate lets size bytes go; False if the client left meanwhile."""
        assert self.pace is not None
        wait = await self.pace(size)
        if wait > 0:
            await asyncio.wait((gone,), timeout=wait)
        return not gone.done()

    async def close(self) -> None:
        """Release the source and the slot (idempotent)."""
        try:
            aclose = getattr(self.rest, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self.slot.release()


class _ASGIObjectStream(ASGIResponse):
    """The ASGI side of ObjectStream: headers, then ObjectBody.send; the slot is freed after."""

    __slots__ = ("object_body",)
    _should_set_content_length = False  # set by the handler: the range's length, not the body's

    def __init__(self, object_body: ObjectBody, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.object_body = object_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.start_response(send=send)
            await self.object_body.send(send, receive)
        finally:
            await self.object_body.close()


class ObjectStream(Response):
    """A Response whose body is an ObjectBody (streamed with backpressure, slot held meanwhile)."""

    def __init__(
        self,
        object_body: ObjectBody,
        *,
        status_code: int,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        super().__init__(
            content=b"", status_code=status_code, headers=headers, media_type=media_type
        )
        self.object_body = object_body

    def to_asgi_response(
        self,
        app: Any,
        request: Request,
        *,
        headers: dict[str, str] | None = None,
        cookies: Iterable[Any] | None = None,
        **_: Any,
    ) -> ASGIResponse:
        """The ASGI response that streams object_body."""
        merged = {**headers, **self.headers} if headers is not None else self.headers
        return _ASGIObjectStream(
            self.object_body,
            cookies=[*self.cookies, *(cookies or ())],
            headers=merged,
            media_type=str(self.media_type),
            status_code=self.status_code,
        )
