"""One Redis pub/sub connection per process that wakes every local SSE stream of an app.

A connection per stream would cost Redis a client per open browser tab; instead the hub holds
one PSUBSCRIBE on all apps' event channels while at least one stream is open, and sets the
wake-up of each local stream of the app a message names. Redis only shortens latency: streams
poll the outbox as well, so a lost publish, a FLUSHALL or Redis down loses nothing. The hub
reconnects with backoff and wakes every stream on (re)connect (publishes may have been missed).
Its client comes from redis_from_settings like every other: on a Redis Cluster, redis-py's
ClusterPubSub holds the subscription on one node, which is enough because a PUBLISH on any node
reaches the subscribers of all nodes; behind Sentinel it follows the current master.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog

from vasset import redis_keys
from vasset.redis_client import AnyRedis, redis_from_settings
from vasset.settings import Settings

log = structlog.get_logger(__name__)

#: Seconds between reconnect attempts while Redis is down (doubling up to the last).
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


class Waiter(asyncio.Event):
    """A stream's wake-up: set on its app's publish, on disconnect and on shutdown."""

    def __init__(self, app_id: int) -> None:
        super().__init__()
        self.app_id = app_id
        #: Set by the stream itself when its client disconnected.
        self.gone = False


class Hub:
    """Fans wake-ups from one pub/sub connection out to the streams of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.waiters: dict[int, set[Waiter]] = {}
        self.stopping = asyncio.Event()
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._signals_chained = False

    def subscribe(self, app_id: int) -> Waiter:
        """Register a stream of app_id; starts the listener if it is the first one."""
        waiter = Waiter(app_id)
        self.waiters.setdefault(app_id, set()).add(waiter)
        if self.stopping.is_set():
            waiter.set()
        elif self._task is None or self._task.done():
            self._chain_stop_signals()
            self._task = asyncio.get_running_loop().create_task(self._listen())
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Forget a stream; the last one out closes the pub/sub connection."""
        group = self.waiters.get(waiter.app_id)
        if group is not None:
            group.discard(waiter)
            if not group:
                del self.waiters[waiter.app_id]
        if not self.waiters and self._task is not None:
            self._task.cancel()
            self._task = None

    def stop(self) -> None:
        """End every stream of this process (server shutdown)."""
        self.stopping.set()
        self._wake_all()
        if self._task is not None:
            self._task.cancel()

    def _wake_all(self) -> None:
        for group in self.waiters.values():
            for waiter in group:
                waiter.set()

    def _wake(self, channel_name: bytes) -> None:
        app = channel_name.decode(errors="replace").rsplit(":", 1)[-1]
        for waiter in self.waiters.get(int(app), ()) if app.isdigit() else ():
            waiter.set()

    async def _listen(self) -> None:
        failures = 0
        pattern = redis_keys.events_pattern(self.settings.redis_prefix)
        while not self.stopping.is_set():
            # A client of its own: the subscription holds its connection for as long as it lives.
            client = redis_from_settings(self.settings, pool_size=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self.connected = True
                failures = 0
                log.info("event_hub_connected")
                self._wake_all()  # publishes sent while we were away are in the outbox
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "pmessage":
                        self._wake(message["channel"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarted: streams poll meanwhile
                if self.connected or failures == 0:
                    log.info("event_hub_disconnected", error=repr(exc))
                self.connected = False
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1
            finally:
                self.connected = False
                await _close(pubsub, client)

    def _chain_stop_signals(self) -> None:
        """Also stop streams on SIGTERM/SIGINT, before the server's own handler runs.

        granian's graceful shutdown waits for every open response, and an event stream never
        ends by itself: without this, shutdown would wait for the kill timeout. The server
        installed its handlers with loop.add_signal_handler; asyncio keeps them in
        loop._signal_handlers, so the hub runs the previous handler after its own.
        """
        if self._signals_chained:
            return
        self._signals_chained = True
        loop = asyncio.get_running_loop()
        handlers: dict[int, Any] | None = getattr(loop, "_signal_handlers", None)
        if handlers is None:
            return  # another loop implementation: streams end at the kill timeout
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = handlers.get(sig)
            if previous is None:
                continue  # nobody handles it on this loop: keep the default (exit)

            def chained(previous: Any = previous) -> None:
                self.stop()
                previous._run()

            loop.add_signal_handler(sig, chained)


async def _close(pubsub: Any, client: AnyRedis) -> None:
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception as exc:  # a dead connection may fail to close; nothing is left to free
        log.debug("event_hub_close_failed", error=repr(exc))
