"""Worker hardening: transient MySQL/Redis errors never end a worker, imports that fail end
upload_failed, bounded priorities, MediaInfo out of the worker's memory, clean error text.

Real `vasset serve` and `vasset worker` processes against a private deployment; the MySQL
restart test runs its own mariadbd, the Redis one its own redis-server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.workers import Stack, settle, wait_until


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("hardening"),
        "hardening",
        VASSET_LADDER="240p",
        VASSET_IMAGE_COUNT="1",
    ).start()
    yield stack
    stack.stop()


@pytest.fixture
def api(stack) -> Api:
    yield stack.api()
    settle(stack.env)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def upload(api: Api, path: Path, **extra) -> int:
    data = path.read_bytes()
    done = api.upload(path.name, data, max(len(data), 100 * 1024), **extra)
    assert done["status"] == "uploaded", done
    return done["vid"]


def status(api: Api, vid: int) -> dict:
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(api: Api, vid: int, until: set[str], timeout: float = 60) -> dict:
    def check():
        s = status(api, vid)
        return s if s["status"] in until else None

    try:
        return wait_until(check, timeout, f"video {vid} to be one of {until}", interval=0.1)
    except AssertionError:
        raise AssertionError(f"video {vid} stuck at {status(api, vid)}") from None


def jobs_of(env, vid: int) -> list[dict]:
    rows = sql(
        env,
        "SELECT id, state, attempts, error FROM transcode_job WHERE video_id = :v ORDER BY id",
        v=vid,
    )
    return [dict(zip(("id", "state", "attempts", "error"), r, strict=True)) for r in rows]


async def _burst(urls: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(urls))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post(u) for u in urls))


# ---- 3. a burst of transcodes of one video against a claiming worker


def test_transcode_burst_on_one_video_never_stops_the_worker(stack, api, clips):
    vid = upload(api, media.landscape(clips), auto=0)
    fleet = stack.fleet("burst", VASSET_FFMPEG_GLOBAL_LIMIT="4", VASSET_FFMPEG_NODE_LIMIT="4")
    with fleet:
        (worker,) = fleet.start(1)
        answers: dict[int, int] = {}
        for _ in range(15):
            urls = [api.url("POST", "/video/transcode", {"vid": vid}) for _ in range(100)]
            for r in asyncio.run(_burst(urls)):
                answers[r.status_code] = answers.get(r.status_code, 0) + 1
                assert r.status_code in (200, 503), r.text
            assert worker.alive(), worker.tail()
        done = wait_status(api, vid, {"playable", "transcode_failed"}, timeout=60)
        assert worker.alive(), worker.tail()
        assert not worker.events("worker_stopped")
        assert not [e for e in worker.events() if e.get("level") == "error"], worker.tail()
    assert done["status"] == "playable", done
    # Retried inside the transaction helper: a deadlock never reaches the client.
    assert answers == {200: 1500}, answers
    jobs = jobs_of(stack.env, vid)
    assert len(jobs) == 1500
    assert jobs[-1]["state"] == "succeeded"
    # Every other job was superseded (or finished between two bursts); none failed.
    assert {j["state"] for j in jobs[:-1]} <= {"cancelled", "succeeded"}
