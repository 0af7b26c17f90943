"""The right to complete an upload: taken once, kept fresh while the completion runs.

A completion can take a while (joining parts, finishing the MD5, publishing), so its claim is
a lease on the upload row (`completing_at`). The claimer renews it every third of the lease;
a claimer that died (SIGKILL, a lost host) stops renewing and any request may take the upload
over one lease later, instead of the upload staying stuck until a long fixed timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.db import transaction
from vasset.upload import repository as repo

log = structlog.get_logger(__name__)


async def take(engine: AsyncEngine, upload_pk: int, lease: int) -> int:
    """Claim the completion (LostRace if another live claim holds it); the claim's time."""
    now = int(time.time())
    async with transaction(engine) as conn:
        await repo.take_completion(conn, upload_pk, lease, now=now)
    return now


@asynccontextmanager
async def kept_fresh(
    engine: AsyncEngine, upload_pk: int, claimed_at: int, lease: int
) -> AsyncIterator[None]:
    """Renew a taken claim in the background for as long as the block runs."""
    task = asyncio.ensure_future(_renew(engine, upload_pk, claimed_at, lease))
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


async def _renew(engine: AsyncEngine, upload_pk: int, claimed_at: int, lease: int) -> None:
    """Move completing_at forward every lease/3 seconds until cancelled or taken over."""
    while True:
        await asyncio.sleep(max(1.0, lease / 3))
        now = int(time.time())
        if now == claimed_at:
            continue
        try:
            async with transaction(engine) as conn:
                renewed = await repo.renew_completion(conn, upload_pk, claimed_at, now)
        except Exception as exc:  # MySQL away for a moment: the next turn tries again
            log.warning("completion_renew_failed", upload_pk=upload_pk, error=str(exc))
            continue
        if not renewed:
            # Taken over (this process stalled past the lease) or the upload ended meanwhile.
            log.warning("completion_claim_lost", upload_pk=upload_pk)
            return
        claimed_at = now
