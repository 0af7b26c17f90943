"""A completion claim is renewed while it runs and taken over one lease after its claimer dies."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from tests.support.db import migrated_engine
from vasset.lifecycle import LostRace
from vasset.upload import claims
from vasset.upload import repository as uploads
from vasset.videos import repository as videos

LEASE = 3


@pytest.fixture(scope="module")
async def engine(test_env):
    """A private database (the claims bent here must not reach other tests)."""
    async with migrated_engine(test_env["VASSET_DATABASE_URL"], "cl") as engine:
        yield engine


async def new_upload(engine) -> int:
    async with engine.begin() as conn:
        vid = await videos.insert_video(
            conn, app_id=1, source_name="clip.mp4", status="uploading", image_count=1
        )
        upload_id = secrets.token_hex(16)
        await uploads.insert_upload(
            conn,
            upload_id=upload_id,
            token_hash="0" * 64,
            app_id=1,
            video_id=vid,
            file_size=10,
            part_size=10,
            part_count=1,
            storage_key=f"sources/1/{vid}",
            multipart_id="m",
            expires_at=int(time.time()) + 3600,
        )
        return (await uploads.get_upload(conn, upload_id)).id


async def test_a_running_completion_keeps_its_claim_past_the_lease(engine):
    upload = await new_upload(engine)
    claimed_at = await claims.take(engine, upload, LEASE)
    async with claims.kept_fresh(engine, upload, claimed_at, LEASE):
        await asyncio.sleep(2 * LEASE + 1)
        # Without renewals the claim would be two leases old and this take would succeed.
        with pytest.raises(LostRace):
            await claims.take(engine, upload, LEASE)


async def test_a_claim_nobody_renews_is_taken_over_after_one_lease(engine):
    upload = await new_upload(engine)
    await claims.take(engine, upload, LEASE)  # the claimer dies: nothing renews it
    with pytest.raises(LostRace):
        await claims.take(engine, upload, LEASE)
    await asyncio.sleep(LEASE + 1.5)
    assert await claims.take(engine, upload, LEASE) > 0


async def test_a_claimer_that_was_taken_over_stops_renewing(engine):
    upload = await new_upload(engine)
    first = await claims.take(engine, upload, LEASE)
    await asyncio.sleep(LEASE + 1.5)
    second = await claims.take(engine, upload, LEASE)  # the first claimer stalled past its lease
    async with engine.begin() as conn:
        # The stalled claimer's renewal names its own claim time, which is no longer there.
        assert not await uploads.renew_completion(conn, upload, first, int(time.time()))
        assert await uploads.renew_completion(conn, upload, second, second + 1)
