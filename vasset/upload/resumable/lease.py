"""The write lease of a protocol upload: one writer at a time, across API instances.

A MySQL row lease, not a Redis lock: MySQL is the truth, a Redis FLUSHALL must not let two
writers in, and the offset UPDATE is fenced on the lease holder anyway. The holder renews it
while its body streams; a killed process's lease runs out after VASSET_TUS_LOCK_TTL seconds.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.upload.resumable import repository as repo

log = structlog.get_logger(__name__)


@asynccontextmanager
async def write_lease(engine: AsyncEngine, upload_pk: int, ttl: float) -> AsyncIterator[str]:
    """Hold an upload's write lease (yields the writer id); UploadLocked at once if taken."""
    writer = secrets.token_hex(16)
    ttl_ms = int(ttl * 1000)
    async with transaction(engine) as conn:
        if not await repo.take_lease(conn, upload_pk, writer, ttl_ms):
            raise errors.UploadLocked()
    renewer = asyncio.create_task(_renew(engine, upload_pk, writer, ttl_ms))
    try:
        yield writer
    finally:
        renewer.cancel()
        await asyncio.shield(_release(engine, upload_pk, writer))


async def _renew(engine: AsyncEngine, upload_pk: int, writer: str, ttl_ms: int) -> None:
    while True:
        await asyncio.sleep(ttl_ms / 3000)
        try:
            async with transaction(engine) as conn:
                if not await repo.renew_lease(conn, upload_pk, writer, ttl_ms):
                    log.warning("resumable_lease_lost", upload_pk=upload_pk)
                    return
        except Exception as exc:  # the fenced UPDATE at the end decides; keep trying
            log.warning("resumable_lease_renewal_failed", error=repr(exc))


async def _release(engine: AsyncEngine, upload_pk: int, writer: str) -> None:
    try:
        async with transaction(engine) as conn:
            await repo.release_lease(conn, upload_pk, writer)
    except Exception as exc:  # the lease runs out by itself
        log.warning("resumable_lease_release_failed", error=repr(exc))
