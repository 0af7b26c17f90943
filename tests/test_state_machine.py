"""The three lifecycles (video, upload, job): every move against the real MariaDB.

For each lifecycle, every allowed move succeeds from its source status, sets its payload and
returns its Transition; a move from a stale status is a LostRace; every move the machine does
not list is an IllegalTransition that leaves the row alone.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
from sqlalchemy import text

from tests.support.db import migrated_engine, sql
from vasset.lifecycle import IllegalTransition, LostRace, Transition
from vasset.transcode import queue
from vasset.transcode import repository as jobs
from vasset.transcode.jobstate import JOB, JobState
from vasset.upload import repository as uploads
from vasset.upload.state import UPLOAD, UploadStatus
from vasset.videos import repository as videos
from vasset.videos.state import TRANSCODABLE, TRANSITIONS, VIDEO, VideoStatus, can_transition


@pytest.fixture(scope="module")
async def engine(test_env):
    """A private database: the rows these tests bend must never reach another test's worker."""
    async with migrated_engine(test_env["VASSET_DATABASE_URL"], "sm") as engine:
        yield engine


async def new_video(conn, status: str = "uploading", **values) -> int:
    return await videos.insert_video(
        conn, app_id=1, source_name="clip.mp4", status=status, image_count=1, **values
    )


async def new_upload(conn, status: str) -> int:
    vid = await new_video(conn)
    upid = f"{time.monotonic_ns():032d}"[-32:]
    await uploads.insert_upload(
        conn,
        upload_id=upid,
        token_hash="0" * 64,
        app_id=1,
        video_id=vid,
        file_size=10,
        part_size=10,
        part_count=1,
        storage_key="sources/1/x",
        multipart_id="m",
        expires_at=int(time.time()) + 3600,
    )
    row = await uploads.get_upload(conn, upid)
    await conn.execute(
        text("UPDATE upload SET status = :s WHERE id = :i"), {"s": status, "i": row.id}
    )
    return row.id


async def new_job(conn, state: str) -> int:
    vid = await new_video(conn, "transcode_queued")
    job_id = await jobs.insert_job(conn, 1, vid, "transcode", 0, 3, None)
    await conn.execute(
        text("UPDATE transcode_job SET state = :s WHERE id = :i"), {"s": state, "i": job_id}
    )
    return job_id


async def read(conn, table: str, column: str, row_id: int, extra: str):
    row = (
        await conn.execute(
            text(f"SELECT {column}, {extra} FROM {table} WHERE id = :i"), {"i": row_id}
        )
    ).one()
    return tuple(row)


LIFECYCLES = {
    # name: (machine, insert, move, table, status column, a payload column and value)
    "video": (VIDEO, new_video, videos.move_video, "video", "status", ("error", "why")),
    "upload": (UPLOAD, new_upload, uploads.move_upload, "upload", "status", ("error", "why")),
    "job": (JOB, new_job, jobs.move_job, "transcode_job", "state", ("error", "why")),
}


@pytest.mark.parametrize("name", LIFECYCLES)
async def test_every_allowed_move_succeeds_and_every_other_is_refused(engine, name):
    machine, insert, move, table, column, (field, value) = LIFECYCLES[name]
    states = list(machine.moves)
    allowed = refused = 0
    for source, target in itertools.product(states, states):
        async with engine.begin() as conn:
            row_id = await insert(conn, source.value)
            if machine.allows(source, target):
                moved = await move(conn, row_id, source, target, **{field: value})
                assert moved == Transition(name, row_id, source.value, target.value, {field: value})
                assert await read(conn, table, column, row_id, field) == (target.value, value)
                if target != source:
                    # The same move again starts from a status the row has left: a lost race.
                    with pytest.raises(LostRace) as lost:
                        await move(conn, row_id, source, target)
                    assert lost.value.found == target.value
                allowed += 1
            else:
                with pytest.raises(IllegalTransition):
                    await move(conn, row_id, source, target, **{field: value})
                assert await read(conn, table, column, row_id, field) == (source.value, None)
                refused += 1
    assert allowed == sum(len(m) for m in machine.moves.values())
    assert allowed + refused == len(states) ** 2


async def test_a_move_from_several_sources_records_the_one_it_left(engine):
    async with engine.begin() as conn:
        vid = await new_video(conn, "transcoding")
        sources = (VideoStatus.TRANSCODE_QUEUED, VideoStatus.TRANSCODING)
        moved = await videos.move_video(conn, vid, sources, VideoStatus.TRANSCODE_FAILED)
        assert (moved.old, moved.new) == ("transcoding", "transcode_failed")
        with pytest.raises(LostRace):
            await videos.move_video(conn, vid, sources, VideoStatus.TRANSCODE_FAILED)
        # One refused source refuses the whole move, whatever the row holds.
        with pytest.raises(IllegalTransition):
            await videos.move_video(
                conn, vid, (VideoStatus.PLAYABLE, VideoStatus.UPLOADING), VideoStatus.UPLOADED
            )


async def test_a_deleted_video_does_not_move(engine):
    async with engine.begin() as conn:
        vid = await new_video(conn, "uploading")
        await videos.mark_deleted(conn, vid)
        with pytest.raises(LostRace) as lost:
            await videos.move_video(conn, vid, VideoStatus.UPLOADING, VideoStatus.UPLOADED)
        assert lost.value.found is None


async def test_a_job_moves_only_under_its_lease_token_and_a_new_holder_fences(engine):
    async with engine.begin() as conn:
        job_id = await new_job(conn, "running")
        job = await jobs.get_job(conn, job_id)
        with pytest.raises(LostRace):
            await jobs.move_job(
                conn, job_id, JobState.RUNNING, JobState.FAILED, token=job.lease_token + 1
            )
        await jobs.move_job(conn, job_id, JobState.RUNNING, JobState.QUEUED, token=job.lease_token)
        after = await jobs.get_job(conn, job_id)
        assert after.state == JobState.QUEUED and after.lease_token == job.lease_token + 1
        # The old holder's token no longer moves it; the new holder's does, and keeps it.
        await jobs.move_job(conn, job_id, JobState.QUEUED, JobState.RUNNING)
        with pytest.raises(LostRace):
            await jobs.move_job(
                conn, job_id, JobState.RUNNING, JobState.SUCCEEDED, token=job.lease_token
            )
        token = job.lease_token + 2
        await jobs.move_job(conn, job_id, JobState.RUNNING, JobState.SUCCEEDED, token=token)
        assert (await jobs.get_job(conn, job_id)).lease_token == token


async def test_updates_other_than_moves_cannot_change_a_status(engine):
    async with engine.begin() as conn:
        vid = await new_video(conn, "uploading")
        with pytest.raises(ValueError):
            await videos.update_video(conn, vid, status="playable")


async def test_a_completion_is_taken_once_until_its_lease_runs_out(engine):
    async with engine.begin() as conn:
        upload = await new_upload(conn, "uploading")
        taken = await uploads.take_completion(conn, upload, lease=60)
        assert (taken.old, taken.new) == ("uploading", "completing")
        with pytest.raises(LostRace):
            await uploads.take_completion(conn, upload, lease=60)
        await conn.execute(
            text("UPDATE upload SET completing_at = :t WHERE id = :i"),
            {"t": int(time.time()) - 120, "i": upload},
        )
        again = await uploads.take_completion(conn, upload, lease=60)
        assert (again.old, again.new) == ("completing", "completing")


async def test_the_safety_net_enqueues_through_the_one_path_with_the_configured_attempts(engine):
    async with engine.begin() as conn:
        vid = await new_video(conn, "transcoding", update_time=int(time.time()) - 3600)
        assert await queue.video_state_fix(conn, max_attempts=7) >= 1
        (job,) = [j for j in await jobs.list_jobs(conn, "queued", 3600) if j.video_id == vid]
        assert job.max_attempts == 7 and job.kind == "transcode"
        video = await videos.get_video(conn, vid)
        assert video.status == VideoStatus.TRANSCODE_QUEUED
        # A second pass finds the live job and leaves the video alone.
        await queue.video_state_fix(conn, max_attempts=7)
        assert [j.id for j in await jobs.list_jobs(conn, "all", 0) if j.video_id == vid] == [job.id]


async def test_an_import_waits_uploading_and_other_jobs_wait_queued(engine):
    async with engine.begin() as conn:
        vid = await new_video(conn, "uploading")
        await queue.enqueue(conn, 1, vid, "import", 0, 3, {"src": "https://example.test/a"})
        assert (await videos.get_video(conn, vid)).status == VideoStatus.UPLOADING
        uploaded = await new_video(conn, "uploaded")
        first = await queue.enqueue(conn, 1, uploaded, "transcode", 5, 3)
        second = await queue.enqueue(conn, 1, uploaded, "retranscode", 5, 3)
        assert (await videos.get_video(conn, uploaded)).status == VideoStatus.TRANSCODE_QUEUED
        assert (await jobs.get_job(conn, first)).state == JobState.CANCELLED
        assert (await jobs.get_job(conn, second)).state == JobState.QUEUED
        # A video still uploading is no place for a transcode: a bug in the caller.
        with pytest.raises(IllegalTransition):
            await queue.enqueue(conn, 1, await new_video(conn, "uploading"), "transcode", 0, 3)


def test_happy_path_walks_the_api_order():
    path = ["uploading", "uploaded", "transcode_queued", "transcoding", "transcode_succeeded"]
    for current, target in itertools.pairwise([*path, "playable"]):
        assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("upload_failed", "uploaded"),
        ("uploading", "playable"),
        ("uploaded", "playable"),
        ("playable", "uploading"),
        ("transcode_failed", "playable"),
        ("uploaded", "uploaded"),
    ],
)
def test_forbidden_video_moves(current, target):
    assert not can_transition(current, target)


def test_retry_and_retranscode_moves():
    for source in ("transcoding", "playable", "transcode_failed", "uploaded"):
        assert can_transition(source, "transcode_queued")
    assert TRANSITIONS[VideoStatus.UPLOAD_FAILED] == frozenset()


def test_the_transcode_call_accepts_exactly_the_statuses_the_machine_moves_to_queued(api, test_env):
    vid = api.upload("machine.mp4", os.urandom(1000), 1000)["vid"]
    try:
        for status in VideoStatus:
            # Bend the row: the call, not the path that got the video there, is under test.
            sql(test_env, "UPDATE video SET status = :s WHERE id = :v", s=status.value, v=vid)
            for call in ("/video/transcode", "/video/retranscode"):
                r = api.call("POST", call, {"vid": vid})
                now = api.call("GET", "/video/status", {"vid": vid}).json()["status"]
                if status in TRANSCODABLE:
                    assert r.status_code == 200 and now == "transcode_queued", (status, r.text)
                    sql(test_env, "UPDATE video SET status = :s WHERE id = :v", s=status, v=vid)
                else:
                    assert r.status_code == 409, (status, call, r.text)
                    assert r.json()["code"] == "InvalidState" and now == status
    finally:
        # No worker serves this database, but leave no live job behind for one that might.
        sql(test_env, "UPDATE transcode_job SET state = 'cancelled' WHERE video_id = :v", v=vid)


def test_statuses_are_the_stored_values():
    assert [s.value for s in VideoStatus] == [
        "uploading",
        "uploaded",
        "upload_failed",
        "transcode_queued",
        "transcoding",
        "transcode_succeeded",
        "transcode_failed",
        "playable",
    ]
    assert {s.value for s in UploadStatus} == {
        "uploading",
        "completing",
        "uploaded",
        "failed",
        "aborted",
        "expired",
    }
    assert {s.value for s in JobState} == {"queued", "running", "succeeded", "failed", "cancelled"}
