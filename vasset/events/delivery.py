"""Webhook delivery: the Deliverer every worker process runs beside its transcode loop.

MySQL is the truth: a Deliverer claims due pending deliveries with SKIP LOCKED under a lease
(delivery_repository.py), so any number of workers on any hosts share them, a killed worker's
deliveries come back when their lease runs out, and Redis only speeds up the wake-up (a
pattern subscription to the apps' event channels; without it the loop polls every POLL s).

One attempt POSTs the event's exact body with the Standard Webhooks headers (signing.py; the
webhook-id is the event's, the same on every retry), to an address resolved and checked again
right before it (ssrf.py), without following redirects, within webhook_timeout. Any 2xx is a
success; 410 disables the endpoint; anything else is retried on the specification's schedule
times webhook_retry_scale, with jitter, and fails after the last attempt. An endpoint failing
without a success for webhook_disable_after_days is disabled.
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
import time

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vasset import errors, redis_keys
from vasset.context import Context
from vasset.db import run_transaction
from vasset.events import delivery_repository as repo
from vasset.events import signing
from vasset.events.delivery_repository import Claimed
from vasset.events.sender import Sender
from vasset.loop_errors import TRANSIENT, loop_error
from vasset.metrics.registry import metrics

log = structlog.get_logger(__name__)

# Delivery also meets the network: a refused or reset connection is a hiccup too.
_loop_error = functools.partial(loop_error, transient=(*TRANSIENT, OSError))

#: Seconds before each attempt (Standard Webhooks): the first at once, the last after 24 h.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # +-10 %: endpoints that failed together do not all come back at once
POLL = 0.5  # seconds between claims when idle (p95 of state change -> webhook under 1 s)
FLUSH = 0.05  # seconds successes wait to be settled together in one transaction
MAX_BACKOFF = 5.0


def retry_delay(failed: int, scale: float) -> float | None:
    """Seconds until the next attempt after `failed` failed ones (None: no attempt is left)."""
    if failed >= len(SCHEDULE):
        return None
    return SCHEDULE[failed] * scale * random.uniform(1 - JITTER, 1 + JITTER)


class Deliverer:
    """Claims and attempts deliveries on its own concurrency until the worker stops."""

    def __init__(self, ctx: Context, worker_id: str, stopping: asyncio.Event) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.worker_id = worker_id
        self.stopping = stopping
        self.size = max(1, s.webhook_concurrency)
        # Claimed and leased: twice the attempts at once, so a claim fetches more rows per
        # transaction (fewer claims per delivery). The rest wait for a slot, at most one
        # attempt's time, so the lease covers waiting, the attempt and settling it.
        self.capacity = 2 * self.size
        self.slots = asyncio.Semaphore(self.size)
        self.lease_ms = int((2 * s.webhook_timeout + 5) * 1000)
        self.sender = Sender(s.webhook_allow_hosts, s.webhook_timeout, self.size)
        self.inflight: dict[asyncio.Task[None], tuple[int, str]] = {}
        self.nudge = asyncio.Event()
        self.succeeded: list[tuple[int, str, int, int]] = []
        self.flush_now = asyncio.Event()
        self.helpers: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Claim and attempt until stopping is set, then drain (see drain)."""
        self.helpers = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._flusher()),
            asyncio.create_task(self._watch_stop()),
        ]
        log.info("deliverer_started", worker=self.worker_id, concurrency=self.size)
        failed = 0
        while not self.stopping.is_set():
            free = self.capacity - len(self.inflight)
            # Claim in batches: with work in flight, wait until half the capacity is free.
            if free <= 0 or (self.inflight and free < max(1, self.capacity // 2)):
                await self._wait(POLL)
                continue
            try:
                batch = await self._claim(free)
            except Exception as exc:
                failed += 1
                _loop_error("delivery_claim_failed", exc, failures=failed)
                await self._wait(min(MAX_BACKOFF, POLL * 2 ** min(failed, 6)), nudged=False)
                continue
            failed = 0
            for owner, item in batch:
                task = asyncio.create_task(self._deliver(item, owner))
                self.inflight[task] = (item.id, owner)
                task.add_done_callback(self._finished)
            if len(batch) < free:
                await self._wait(POLL)

    async def drain(self, grace: float) -> None:
        """After run: let attempts in flight end within grace, give back the rest, settle."""
        if self.inflight:
            log.info("deliverer_draining", deliveries=len(self.inflight), grace=grace)
            _, late = await asyncio.wait(list(self.inflight), timeout=grace)
            leases = [self.inflight[t] for t in late if t in self.inflight]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if leases:
                await self._give_back(leases)
        for task in self.helpers:
            task.cancel()
        await asyncio.gather(*self.helpers, return_exceptions=True)
        try:
            await self._flush()
        except Exception as exc:  # unsettled successes are delivered again: at least once
            _loop_error("delivery_flush_failed", exc)
        await self.sender.aclose()
        log.info("deliverer_stopped", worker=self.worker_id)

    # claiming
    async def _claim(self, limit: int) -> list[tuple[str, Claimed]]:
        owner = secrets.token_hex(16)
        now_ms = int(time.time() * 1000)
        work = functools.partial(
            repo.claim_due, owner=owner, now_ms=now_ms, lease_ms=self.lease_ms, limit=limit
        )
        return [(owner, c) for c in await run_transaction(self.ctx.engine, work)]

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)
        self.nudge.set()

    async def _wait(self, seconds: float, nudged: bool = True) -> None:
        """Sleep up to seconds; a nudge (a slot freed, an event announced) ends it early."""
        self.nudge.clear()
        waiter = self.nudge if nudged else self.stopping
        try:
            await asyncio.wait_for(waiter.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _watch_stop(self) -> None:
        await self.stopping.wait()
        self.nudge.set()

    async def _listen(self) -> None:
        """Nudge the claim loop whenever an app announces events (best effort)."""
        pattern = redis_keys.events_pattern(self.ctx.settings.redis_prefix)
        while not self.stopping.is_set():
            pubsub = self.ctx.redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while not self.stopping.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        self.nudge.set()
            except Exception as exc:  # Redis down: the claim loop polls MySQL meanwhile
                log.info("delivery_listen_failed", error=type(exc).__name__)
                await asyncio.sleep(2.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    # one delivery
    async def _deliver(self, item: Claimed, owner: str) -> None:
        try:
            if not item.enabled or item.deleted_at is not None:
                why = "endpoint deleted" if item.deleted_at is not None else "endpoint disabled"
                await self._tx(lambda c: repo.fail_unsendable(c, item.id, owner, why, _now()))
                metrics().webhook_deliveries.labels("unsendable").inc()
                return
            async with self.slots:
                status, error = await self._attempt(item)
            if status is not None and 200 <= status < 300:
                self.succeeded.append((item.id, owner, status, item.endpoint_id))
                metrics().webhook_deliveries.labels("succeeded").inc()
                if len(self.succeeded) >= 100:
                    self.flush_now.set()
                log.debug(
                    "webhook_delivered", delivery=item.id, event_id=item.event_id, status=status
                )
                return
            await self._settle_failure(item, owner, status, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unsettled: the lease runs out and the delivery comes back
            _loop_error("delivery_unsettled", exc, delivery=item.id)

    async def _attempt(self, item: Claimed) -> tuple[int | None, str | None]:
        """One POST; (HTTP status, None) or (None, why it did not get an answer)."""
        now = int(time.time())
        headers = signing.headers(
            item.event_id, now, item.body, item.secret, item.old_secret, item.old_secret_until
        )
        try:
            async with asyncio.timeout(self.ctx.settings.webhook_timeout):
                status = await self.sender.post(item.url, headers, item.body.encode())
        except TimeoutError:
            return None, "timed out"
        except errors.InvalidWebhookUrl as exc:
            return None, f"refused: {exc}"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:255]
        except OSError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:255]
        return status, None

    async def _settle_failure(
        self, item: Claimed, owner: str, status: int | None, error: str | None
    ) -> None:
        s = self.ctx.settings
        failed = item.attempts + 1
        now = time.time()
        gone = status == 410
        delay = None if gone else retry_delay(failed, s.webhook_retry_scale)
        next_ms = int((now + delay) * 1000) if delay is not None else None
        limit = s.webhook_disable_after_days * 86400

        async def work(conn: AsyncConnection) -> str | None:
            if not await repo.mark_failed_attempt(
                conn, item.id, owner, status, error, next_ms, int(now)
            ):
                return None  # another worker took the lease over: its outcome counts
            if gone:
                reason = "the endpoint answered 410 Gone"
            else:
                since = await repo.endpoint_failed(conn, item.endpoint_id, int(now))
                if since is None or now - since < limit:
                    return None
                reason = f"failing without a success for {s.webhook_disable_after_days:g} days"
            return reason if await repo.disable_endpoint(conn, item.endpoint_id, reason) else None

        disabled = await run_transaction(self.ctx.engine, work)
        log.info(
            "webhook_attempt_failed",
            delivery=item.id,
            event_id=item.event_id,
            endpoint=item.endpoint_id,
            attempt=failed,
            status=status,
            error=error,
            retry_in=round(delay, 3) if delay is not None else None,
        )
        # failed: it is tried again later; gave_up: no attempt is left (or 410 Gone).
        metrics().webhook_deliveries.labels("failed" if delay is not None else "gave_up").inc()
        if disabled:
            log.warning("webhook_endpoint_disabled", endpoint=item.endpoint_id, reason=disabled)

    # settling successes together
    async def _flusher(self) -> None:
        while True:
            self.flush_now.clear()
            try:
                await asyncio.wait_for(self.flush_now.wait(), timeout=FLUSH)
            except TimeoutError:
                pass
            try:
                await self._flush()
            except Exception as exc:  # kept for the next round; leases cover the wait
                _loop_error("delivery_flush_failed", exc)
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        batch, self.succeeded = self.succeeded, []
        if not batch:
            return
        now = _now()

        async def work(conn: AsyncConnection) -> None:
            await repo.mark_succeeded(conn, [(d, o, st) for d, o, st, _ in batch], now)
            await repo.endpoints_succeeded(conn, [e for *_, e in batch], now)

        try:
            await run_transaction(self.ctx.engine, work)
        except BaseException:
            self.succeeded = batch + self.succeeded
            raise

    async def _give_back(self, leases: list[tuple[int, str]]) -> None:
        now_ms = int(time.time() * 1000)
        try:
            await self._tx(lambda conn: repo.give_back(conn, leases, now_ms))
        except Exception as exc:  # their leases run out by themselves
            _loop_error("deliveries_not_given_back", exc)

    async def _tx(self, work) -> None:
        await run_transaction(self.ctx.engine, work)


def _now() -> int:
    return int(time.time())
