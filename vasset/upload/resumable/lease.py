"""The write lease of a protocol upload: one writer at a time, across API instances.

A MySQL row lease, not a Redis lock: MySQL is the truth, a Redis FLUSHALL must not let two
writers in, and the offset UPDATE is fenced on the lease holder anyway. The holder renews it
while its body streams; a killed process's lease runs out after VASSET_TUS_LOCK_TTL seconds.
A process that froze past its lease must not write either: every chunk checks ``Lease.check``
(monotonic time, which runs on while a process is stopped) before it reaches storage, and the
part numbers and tail keys a writer uses are claimed in the database, never reused.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.upload.resumable import repository as repo

log = structlog.get_logger(__name__)


class Lease:
    """A held write lease: its writer id, and until when this process may still trust it."""

    def __init__(self, writer: str, ttl: float) -> None:
        self.writer = writer
        self.ttl = ttl
        self._trusted_until = 0.0

    def renewed(self, asked_at: float) -> None:
        """The database confirmed the lease asked for at ``asked_at`` (monotonic)."""
        # Trust it for less than its TTL: another process may take it once the TTL has passed.
        self._trusted_until = asked_at + self.ttl * 0.8

    def check(self) -> None:
        """LeaseLost when the lease may have passed to another writer (a frozen process)."""
        if time.monotonic() >= self._trusted_until:
            raise errors.UploadLocked("this request lost its write lease (it stalled too long)")


@asynccontextmanager
async def write_lease(engine: AsyncEngine, upload_pk: int, ttl: float) -> AsyncIterator[Lease]:
    """Hold an upload's write lease; UploadLocked at once if another writer holds it."""
    lease = Lease(secrets.token_hex(16), ttl)
    ttl_ms = int(ttl * 1000)
    asked = time.monotonic()
    async with transaction(engine) as conn:
        if not await repo.take_lease(conn, upload_pk, lease.writer, ttl_ms):
            raise errors.UploadLocked()
    lease.renewed(asked)
    renewer = asyncio.create_task(_renew(engine, upload_pk, lease, ttl_ms))
    try:
        yield lease
    finally:
        renewer.cancel()
        await asyncio.shield(_release(engine, upload_pk, lease.writer))


async def _renew(engine: AsyncEngine, upload_pk: int, lease: Lease, ttl_ms: int) -> None:
    while True:
        await asyncio.sleep(ttl_ms / 4000)
        asked = time.monotonic()
        try:
            async with transaction(engine) as conn:
                if not await repo.renew_lease(conn, upload_pk, lease.writer, ttl_ms):
                    log.warning("resumable_lease_lost", upload_pk=upload_pk)
                    return
            lease.renewed(asked)
        except Exception as exc:  # the fenced UPDATE at the end decides; keep trying
            log.warning("resumable_lease_renewal_failed", error=repr(exc))


async def _release(engine: AsyncEngine, upload_pk: int, writer: str) -> None:
    try:
        async with transaction(engine) as conn:
            await repo.release_lease(conn, upload_pk, writer)
    except Exception as exc:  # the lease runs out by itself
        log.warning("resumable_lease_release_failed", error=repr(exc))
