"""Worker faults with real `vasset worker` processes: priority order, the global FFmpeg cap,
SIGKILL mid-transcode, Redis restarted mid-transcode, graceful and hurried SIGTERM.

Each test starts its own workers against the module's private deployment, and ends its
leftovers (settle), so one test's jobs never reach another test's workers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.redis_server import RedisServer
from tests.support.workers import (
    FfmpegSampler,
    Stack,
    ffmpeg_pids,
    job_ffmpeg,
    kill_group,
    long_clip,
    medium_clip,
    open_slot_epoch,
    settle,
    wait_until,
)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("faults"),
        "faults",
        VASSET_LADDER="240p,360p",
        VASSET_IMAGE_COUNT="2",
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


def add_videos(api: Api, path: Path, count: int) -> list[int]:
    """count uploaded (not queued) videos of one file: an upload, then instant ones."""
    data = path.read_bytes()
    vids = []
    for _ in range(count):
        done = api.upload(path.name, data, max(len(data), 100 * 1024), auto=0)
        assert done["status"] == "uploaded", done
        vids.append(done["vid"])
    return vids


def transcode(api: Api, vid: int, **params) -> None:
    r = api.call("POST", "/video/transcode", {"vid": vid, **params})
    assert r.status_code == 200, r.text


def job_rows(env, vids: list[int]) -> dict[int, dict]:
    """The latest job of each video, by video id."""
    ids = ",".join(str(int(v)) for v in vids)
    rows = sql(
        env,
        "SELECT video_id, id, state, attempts, started_at, priority, error, lease_token, worker"
        f" FROM transcode_job WHERE video_id IN ({ids}) ORDER BY id",
    )
    keys = ("vid", "id", "state", "attempts", "started_at", "priority", "error", "token", "worker")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def wait_jobs(env, vids: list[int], states=("succeeded",), timeout: float = 60) -> dict:
    def done():
        jobs = job_rows(env, vids)
        finished = len(jobs) == len(vids) and all(j["state"] in states for j in jobs.values())
        return jobs if finished else None

    try:
        return wait_until(done, timeout, f"jobs of {vids} to be {states}", interval=0.1)
    except AssertionError:
        raise AssertionError(f"jobs never all {states}: {job_rows(env, vids)}") from None


def renditions(env, vid: int) -> list[tuple]:
    return sql(
        env,
        "SELECT definition, format, storage_uri FROM video WHERE parent_id = :v"
        " AND deleted_at IS NULL ORDER BY definition, format",
        v=vid,
    )


def prefix_of(key: str) -> str:
    return "/".join(key.split("/")[:3]) + "/"


def one_set_of_renditions(stack: Stack, vid: int, token: int) -> str:
    """The live renditions are exactly one set, under the given attempt's prefix; returns it."""
    rows = renditions(stack.env, vid)
    assert rows and len(rows) == len({(r[0], r[1]) for r in rows}), rows
    prefixes = {prefix_of(r[2]) for r in rows}
    assert len(prefixes) == 1, rows
    (prefix,) = prefixes
    assert prefix.startswith(f"media/{vid}/{token}-"), (prefix, token)
    # A dead attempt may have published a partial set early (progressive HLS): the final
    # publish retires it (deleted_at, as a retranscode retires the old set), never keeps it live.
    retired = sql(
        stack.env,
        "SELECT storage_uri FROM video WHERE parent_id = :v AND deleted_at IS NOT NULL",
        v=vid,
    )
    assert all(not r[0].startswith(prefix) for r in retired), (retired, prefix)
    return prefix


def media_files(stack: Stack, vid: int) -> list[str]:
    base = stack.storage / "media" / str(vid)
    if not base.exists():
        return []
    return sorted(p.relative_to(stack.storage).as_posix() for p in base.rglob("*") if p.is_file())


def temp_entries(stack: Stack) -> list[str]:
    return sorted(p.name for p in stack.temp_dir.iterdir()) if stack.temp_dir.exists() else []


def wait_ladder(env, vid: int, timeout: float = 30) -> tuple[dict, list[int]]:
    """The running job of vid once its ladder FFmpeg runs, and that FFmpeg's pids."""

    def probe():
        job = job_rows(env, [vid]).get(vid)
        pids = job_ffmpeg(job["id"]) if job and job["state"] == "running" else []
        return (job, pids) if pids else None

    return wait_until(probe, timeout, f"the ladder FFmpeg of video {vid}", interval=0.02)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


# ---- 3. priority, then age


def test_jobs_start_in_priority_then_age_order(stack, api, clips):
    vids = add_videos(api, media.landscape(clips), 5)
    priorities = [0, 5, 0, 10, 5]
    for vid, prio in zip(vids, priorities, strict=True):
        transcode(api, vid, priority=prio)
    with stack.fleet(
        "priority", VASSET_FFMPEG_GLOBAL_LIMIT="1", VASSET_FFMPEG_NODE_LIMIT="1"
    ) as fleet:
        fleet.start(1)
        jobs = wait_jobs(stack.env, vids)
    started = [j["id"] for j in sorted(jobs.values(), key=lambda j: j["started_at"])]
    expected = [j["id"] for j in sorted(jobs.values(), key=lambda j: (-j["priority"], j["id"]))]
    assert [jobs[v]["priority"] for v in vids] == priorities
    assert started == expected
    assert all(j["attempts"] == 1 for j in jobs.values())


# ---- 4. the global cap across processes


def test_three_workers_never_run_more_ffmpeg_than_the_global_cap(stack, api, clips):
    vids = add_videos(api, medium_clip(clips), 6)
    for vid in vids:
        transcode(api, vid)
    fleet = stack.fleet("cap", VASSET_FFMPEG_GLOBAL_LIMIT="2", VASSET_FFMPEG_NODE_LIMIT="3")
    with fleet, FfmpegSampler(fleet.marker) as sampler:
        fleet.start(3)
        wait_jobs(stack.env, vids, timeout=90)
    assert sampler.samples > 100
    # It must reach the cap; each worker may run three, so only the global cap stops a third.
    assert sampler.max == 2, sampler.history
    assert all(j["attempts"] == 1 for j in job_rows(stack.env, vids).values())


def test_one_worker_runs_several_jobs_at_once(stack, api, clips):
    """Jobs of one process run side by side (their probes too) without disturbing each other."""
    vids = add_videos(api, media.landscape(clips), 4)
    for vid in vids:
        transcode(api, vid)
    fleet = stack.fleet(
        "side-by-side", VASSET_FFMPEG_GLOBAL_LIMIT="4", VASSET_FFMPEG_NODE_LIMIT="4"
    )
    with fleet:
        (worker,) = fleet.start(1)
        jobs = wait_jobs(stack.env, vids, states=("succeeded", "failed"))
        assert worker.alive(), worker.tail()
    failed = {v: j["error"] for v, j in jobs.items() if j["state"] != "succeeded"}
    assert not failed
    retried = {v: j["attempts"] for v, j in jobs.items() if j["attempts"] != 1}
    assert not retried, [e for e in worker.events("job_failed")]
    started = sorted(j["started_at"] for j in jobs.values())
    assert started[-1] - started[0] < 1.0, "the jobs did not run at the same time"


# ---- 5. SIGKILL mid-transcode


def test_sigkilled_worker_job_is_taken_over_and_completes_once(stack, api, clips):
    (vid,) = add_videos(api, long_clip(clips), 1)
    with stack.fleet("sigkill") as fleet:
        fleet.start(2)
        transcode(api, vid)
        job, pids = wait_ladder(stack.env, vid)
        victim = next(w for w in fleet.workers if f":{w.pid}:" in job["worker"])
        survivor = next(w for w in fleet.workers if w is not victim)
        # The running attempt publishes its HLS segments under its own prefix as FFmpeg writes
        # them (snapshots come from the same run): wait for some, so the clean-up is checked.
        dead_prefix = wait_until(
            lambda: {prefix_of(k) for k in media_files(stack, vid)} or None,
            30,
            "the running attempt's first published objects",
            interval=0.05,
        )
        assert len(dead_prefix) == 1
        victim.kill()  # SIGKILL to the worker's process group: no cleanup of any kind runs
        time.sleep(1)
        orphans = [p for p in pids if alive(p)]

        jobs = wait_jobs(stack.env, [vid], timeout=60)
        assert survivor.events("job_started")
        done = jobs[vid]
        assert done["id"] == job["id"] and done["attempts"] == 2 and done["token"] > job["token"]
        assert f":{survivor.pid}:" in done["worker"]
        reaped = survivor.events("job_reaped")
        assert any(e["job"] == job["id"] and e["outcome"] == "retry" for e in reaped), reaped

        published = one_set_of_renditions(stack, vid, done["token"])
        assert published not in dead_prefix
        # Nothing of the dead attempt lingers: not its objects, not its temp dir.
        wait_until(
            lambda: all(k.startswith(published) for k in media_files(stack, vid)),
            5,
            "only the published prefix in storage",
        )
        wait_until(lambda: not temp_entries(stack), 10, "the dead attempt's temp dir to go")
        assert status(api, vid)["status"] == "playable"
        # FFmpeg dies with its worker (parent-death signal), so it never runs outside the cap.
        still = [p for p in orphans if alive(p)]
        for pid in still:
            kill_group(pid)
        assert not orphans, f"FFmpeg {orphans} outlived its SIGKILLed worker"


def status(api: Api, vid: int) -> dict:
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


# ---- 6. Redis restarted mid-transcode


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_redis_restart_mid_transcode_keeps_the_cap(stack, api, clips, private_redis):
    long_vids = add_videos(api, long_clip(clips), 2)
    short_vids = add_videos(api, medium_clip(clips), 2)
    for vid in long_vids:
        transcode(api, vid, priority=10)
    for vid in short_vids:
        transcode(api, vid)
    prefix = stack.env["VASSET_REDIS_PREFIX"] + "restart:"
    open_slot_epoch(private_redis.url, prefix)
    fleet = stack.fleet(
        "redis",
        VASSET_REDIS_URL=private_redis.url,
        VASSET_REDIS_PREFIX=prefix,
        VASSET_FFMPEG_GLOBAL_LIMIT="2",
        VASSET_FFMPEG_NODE_LIMIT="3",
    )
    with fleet, FfmpegSampler(fleet.marker) as sampler:
        fleet.start(3)
        for vid in long_vids:
            wait_ladder(stack.env, vid)
        private_redis.stop()  # every slot, the epoch and the locks are gone
        time.sleep(1.5)
        private_redis.start()
        restarted = time.monotonic()
        jobs = wait_jobs(stack.env, long_vids + short_vids, timeout=90)
    # The cap held while the sets were rebuilt: no third FFmpeg beside the two running ones.
    assert sampler.max == 2, sampler.history
    after = [count for at, count in sampler.history if at > restarted]
    assert after and max(after) <= 2
    assert all(j["attempts"] == 1 for j in jobs.values()), jobs
    for vid in long_vids + short_vids:
        one_set_of_renditions(stack, vid, jobs[vid]["token"])


# ---- 9. SIGTERM


def test_sigterm_stops_claiming_and_finishes_the_job_within_the_grace(stack, api, clips):
    (vid,) = add_videos(api, long_clip(clips), 1)
    (later,) = add_videos(api, media.landscape(clips), 1)
    with stack.fleet("term-grace", VASSET_WORKER_SHUTDOWN_GRACE="60") as fleet:
        (worker,) = fleet.start(1)
        transcode(api, vid)
        wait_ladder(stack.env, vid)
        worker.terminate()
        worker.wait_event("worker_draining")
        transcode(api, later)  # queued after SIGTERM: this worker must not take it
        assert worker.wait(timeout=60) == 0
    jobs = job_rows(stack.env, [vid, later])
    assert jobs[vid]["state"] == "succeeded" and jobs[vid]["attempts"] == 1
    assert jobs[later]["state"] == "queued" and jobs[later]["attempts"] == 0
    assert [e["job"] for e in worker.events("job_started")] == [jobs[vid]["id"]]
    one_set_of_renditions(stack, vid, jobs[vid]["token"])
    assert not temp_entries(stack)


def test_sigterm_with_a_short_grace_gives_the_job_back(stack, api, clips):
    (vid,) = add_videos(api, long_clip(clips), 1)
    # Not progressive: with a 1 s first segment the attempt may publish a partial set before
    # the SIGTERM, which (by design) stays for players until the next attempt replaces it.
    grace = {"VASSET_WORKER_SHUTDOWN_GRACE": "0.5", "VASSET_HLS_PROGRESSIVE": "0"}
    with stack.fleet("term-short", **grace) as fleet:
        (first,) = fleet.start(1)
        transcode(api, vid)
        job, pids = wait_ladder(stack.env, vid)
        first.terminate()
        assert first.wait(timeout=15) == 0
        assert not any(alive(p) for p in pids), "the worker left its FFmpeg running"
        back = job_rows(stack.env, [vid])[vid]
        # given back untouched: queued at once, the attempt not counted, the fence moved on
        assert back["state"] == "queued" and back["attempts"] == 0, back
        assert back["token"] > job["token"]
        assert status(api, vid)["status"] == "transcode_queued"
        assert not media_files(stack, vid) and not temp_entries(stack)

        (second,) = fleet.start(1)
        done = wait_jobs(stack.env, [vid])[vid]
    assert done["attempts"] == 1 and f":{second.pid}:" in done["worker"]
    one_set_of_renditions(stack, vid, done["token"])
    assert status(api, vid)["status"] == "playable"
    assert not ffmpeg_pids(fleet.marker)
