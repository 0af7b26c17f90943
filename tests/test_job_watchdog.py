"""The worker's watchdog: an attempt that stops moving is stopped, and one that will not stop is
abandoned so its leases lapse and the job goes on; no video stays transcoding forever.

A real API and worker on the OSS test server; the hang is the storage answering the worker's
source download only after 25 s (OSS's own timeout is 30 s), with a stall timeout of 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import oss_env
from tests.support.redis_cluster import wait_until
from tests.support.workers import Stack


@pytest.fixture
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def jobs_of(env: dict, vid: int) -> list[dict]:
    rows = sql(
        env,
        "SELECT state, attempts, lease_token FROM transcode_job WHERE video_id = :v ORDER BY id",
        v=vid,
    )
    return [dict(zip(("state", "attempts", "token"), row, strict=True)) for row in rows]


def test_a_hung_attempt_is_abandoned_and_the_job_completes(test_env, tmp_path, oss_server, clips):
    stack = Stack(
        test_env,
        tmp_path / "stack",
        "watchdog",
        **oss_env(oss_server.endpoint, "watchdog"),
        VASSET_LADDER="360p",
        VASSET_IMAGE_COUNT="1",
        VASSET_JOB_STALL_TIMEOUT="2",
    ).start()
    try:
        api: Api = stack.api()
        data = media.landscape(clips).read_bytes()
        done = api.upload("hung.mp4", data, len(data), auto=1)
        assert done["status"] in ("uploaded", "transcode_queued"), done
        vid = done["vid"]
        # The source download of the first attempt hangs (the answer comes after 25 s).
        # (It then answers 503, which the store retries: the attempt gets its bytes and wakes.)
        oss_server.fail_next("GetObject", delay=25.0, status=503, count=1)
        with stack.fleet("hung") as fleet:
            (worker,) = fleet.start(1)
            hung = worker.wait_event("job_hung", timeout=30)
            assert hung["vid"] == vid and hung["idle"] >= 2, hung
            # The download ignores the cancel: the worker stops renewing its leases instead.
            abandoned = worker.wait_event("job_abandoned", timeout=30)
            assert abandoned["vid"] == vid, abandoned

            def playable():
                answer = api.call("GET", "/video/status", {"vid": vid}).json()
                assert answer["status"] != "transcode_failed", answer
                return answer if answer["status"] == "playable" else None

            # The reaper hands the job on; the next attempt (same worker) completes it.
            wait_until(playable, 60, f"video {vid} playable", interval=0.2)
            (job,) = jobs_of(stack.env, vid)
            assert job["state"] == "succeeded" and job["attempts"] == 2, job
            assert job["token"] > abandoned["token"] == hung["token"], (job, abandoned)

            # The hung attempt wakes when its download answers (its temp dir swept meanwhile),
            # finds the job superseded and publishes nothing: the second attempt's renditions stay.
            def hung_attempt_over():
                return worker.events("job_lease_lost") or [
                    e for e in worker.events("job_outcome") if e["outcome"] == "superseded"
                ]

            wait_until(hung_attempt_over, 40, "the hung attempt to wake and give up")
            rows = sql(
                stack.env,
                "SELECT storage_uri FROM video WHERE parent_id = :v AND deleted_at IS NULL",
                v=vid,
            )
            assert rows and all(f"/{job['token']}-" in uri for (uri,) in rows), rows
            assert worker.alive(), worker.tail()
    finally:
        stack.stop()
