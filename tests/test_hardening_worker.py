"""Worker hardening: transient MySQL/Redis errors never end a worker, imports that fail end
upload_failed, bounded priorities, MediaInfo out of the worker's memory, clean error text.

Real `vasset serve` and `vasset worker` processes against a private deployment; the MySQL
restart test runs its own mariadbd, the Redis one its own redis-server.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import upload
from tests.support.redis_server import RedisServer
from tests.support.server import free_port
from tests.support.workers import Stack, long_clip, open_slot_epoch, settle, wait_until


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("hardening"),
        "hardening",
        VASSET_LADDER="240p",
        VASSET_IMAGE_COUNT="1",
        # localhost passes the allow-list at the API; the worker refuses its loopback address.
        VASSET_IMPORT_ALLOW_HOSTS="localhost",
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


class PrivateMariaDB:
    """A throwaway mariadbd on its own port and data directory, to kill -9 and restart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.datadir = root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}"

    def install(self) -> PrivateMariaDB:
        subprocess.run(
            [
                shutil.which("mariadb-install-db") or "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return self

    def start(self, timeout: float = 60) -> PrivateMariaDB:
        log = open(self.root / "mariadbd.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [
                shutil.which("mariadbd") or "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.root / 'sock'}",
                f"--pid-file={self.root / 'pid'}",
                "--user=root",
                "--skip-grant-tables",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}")
            ok = subprocess.run(
                ["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-e", "SELECT 1"],
                capture_output=True,
            )
            if ok.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("mariadbd did not start")

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def private_mariadb(tmp_path):
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        pytest.skip("mariadbd is not installed")
    server = PrivateMariaDB(tmp_path / "mariadb").install().start()
    yield server
    server.kill()


def call_until_up(api: Api, method: str, path: str, params: dict, timeout: float = 30):
    """A call retried while it answers 503 (the API's pool meets its dead connections)."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.call(method, path, params)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_worker_survives_a_mysql_crash_and_restart(test_env, tmp_path, clips, private_mariadb):
    base = {**test_env, "VASSET_DATABASE_URL": f"{private_mariadb.url}/vasset_private"}
    stack = Stack(base, tmp_path / "stack", "mysql", VASSET_LADDER="240p", VASSET_IMAGE_COUNT="1")
    stack.start()
    try:
        api = stack.api()
        first = upload(api, long_clip(clips), auto=0)
        second = upload(api, media.landscape(clips), auto=0)
        with stack.fleet("mysql") as fleet:
            (worker,) = fleet.start(1)
            assert api.call("POST", "/video/transcode", {"vid": first}).status_code == 200
            worker.wait_event("ffmpeg_started", timeout=30)
            private_mariadb.kill()  # mid-transcode: heartbeats, claims and the reaper all fail
            worker.wait_event("claim_failed", timeout=20)
            worker.wait_event("heartbeat_failed", timeout=20)
            time.sleep(2)
            assert worker.alive(), worker.tail()
            private_mariadb.start()
            r = call_until_up(api, "POST", "/video/transcode", {"vid": second})
            assert r.status_code == 200, r.text
            for vid in (first, second):
                assert wait_status(api, vid, {"playable", "transcode_failed"}, 90)["status"] == (
                    "playable"
                )
            assert worker.alive(), worker.tail()
            assert not worker.events("worker_stopped")
    finally:
        stack.stop()


def test_worker_survives_redis_refusing_writes_and_restarting(stack, api, clips, private_redis):
    prefix = stack.env["VASSET_REDIS_PREFIX"] + "private:"
    open_slot_epoch(private_redis.url, prefix)
    fleet = stack.fleet("redis", VASSET_REDIS_URL=private_redis.url, VASSET_REDIS_PREFIX=prefix)
    with fleet:
        (worker,) = fleet.start(1)
        # A failover demoted this Redis: every write, the slot script's too, answers READONLY.
        redis = private_redis.client()
        redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        # A slot granted just before the demotion may still be on its way to a claim, which
        # would rightly take a job queued meanwhile. Claims run one after another, so once one
        # has failed, every later claim needs a slot that the read-only Redis cannot grant.
        worker.wait_event("claim_failed", timeout=20)
        first = upload(api, media.landscape(clips), auto=1)
        refused = len(worker.events("claim_failed"))
        wait_until(
            lambda: len(worker.events("claim_failed")) > refused,
            20,
            "a claim refused with the job queued",
        )
        time.sleep(1)
        assert worker.alive(), worker.tail()
        assert status(api, first)["status"] == "transcode_queued"
        redis.execute_command("REPLICAOF", "NO", "ONE")
        assert wait_status(api, first, {"playable", "transcode_failed"})["status"] == "playable"

        private_redis.stop()  # refused connections: claims, notifies and the reaper fail
        second = upload(api, media.landscape(clips), auto=1)
        time.sleep(2)
        assert worker.alive(), worker.tail()
        private_redis.start()
        open_slot_epoch(private_redis.url, prefix)
        assert wait_status(api, second, {"playable", "transcode_failed"})["status"] == "playable"
        assert worker.alive(), worker.tail()
        assert not worker.events("worker_stopped")


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


# ---- 11. an import whose source cannot be fetched ends upload_failed with its code


def test_failed_import_ends_upload_failed_with_its_error(stack, api):
    fleet = stack.fleet("imports")
    with fleet:
        fleet.start(1)
        # On the allow-list, but it resolves to loopback: refused when the worker fetches it.
        r = api.call("POST", "/video/transcode", {"src": "http://localhost:9/missing.mp4"})
        assert r.status_code == 200, r.text
        vid = r.json()["vid"]
        done = wait_status(api, vid, {"upload_failed", "transcode_failed"}, timeout=30)
    assert done["status"] == "upload_failed", done
    assert done["error"] and done["error"].startswith("InvalidSource"), done
    assert not done["playable"]
    (job,) = jobs_of(stack.env, vid)
    assert job["state"] == "failed" and job["attempts"] == 1, job  # permanent: no retries


# ---- 10. priorities beyond MySQL's INT are refused at the edge, leaving nothing behind


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 2**63])
def test_out_of_range_priority_is_invalid_parameter(stack, api, clips, priority):
    vid = upload(api, media.landscape(clips), auto=0)
    before = sql(stack.env, "SELECT COUNT(*) FROM video")[0][0]
    calls = [
        ("/video/transcode", {"vid": vid}),
        ("/video/transcode", {"src": "http://localhost:9/clip.mp4"}),
        ("/video/retranscode", {"vid": vid}),
        ("/video/retransocde", {"vid": vid}),
    ]
    for path, params in calls:
        r = api.call("POST", path, {**params, "priority": priority})
        assert r.status_code == 400, (path, r.text)
        body = r.json()
        assert body["code"] == "InvalidParameter" and body["parameter"] == "priority", body
    assert sql(stack.env, "SELECT COUNT(*) FROM video")[0][0] == before
    assert not jobs_of(stack.env, vid)
    assert status(api, vid)["status"] == "uploaded"
    # The largest INT still works.
    r = api.call("POST", "/video/transcode", {"vid": vid, "priority": 2**31 - 1})
    assert r.status_code == 200, r.text


# ---- 6. MediaInfo runs out of the worker's memory; a hostile file fails once, for good


def many_tracks(directory: Path, tracks: int = 999) -> Path:
    """A 64x64, 1 s MP4 with one video and `tracks` copies of a tiny AAC track (about 2 MB)."""

    def build(out: Path) -> None:
        tiny = out.with_name(f".tiny-{out.name}")
        media._ffmpeg(
            [
                *("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5"),
                *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"),
                *("-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-b:a", "8k", "-ac", "1", tiny),
            ]
        )
        try:
            maps = ["-map", "0:v"] + ["-map", "0:a"] * tracks
            media._ffmpeg(["-i", tiny, *maps, "-c", "copy", out])
        finally:
            tiny.unlink(missing_ok=True)

    return media._cached(directory, f"many_tracks_{tracks}.mp4", build)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_probing_a_many_track_file_does_not_grow_the_caller(clips):
    from concurrent.futures import ThreadPoolExecutor

    from vasset.transcode.probe import probe

    path = many_tracks(clips)
    # Like the worker: probes run in threads. The first one loads whatever probing loads.
    with ThreadPoolExecutor(2) as pool:
        pool.submit(probe, media.landscape(clips)).result()
        before = rss_mb()
        infos = [pool.submit(probe, path).result() for _ in range(3)]
        after = rss_mb()
    assert all(i.format == "MPEG-4" and i.has_audio for i in infos)
    assert after - before < 8, f"RSS grew from {before:.0f} MB to {after:.0f} MB"


def test_many_track_upload_ends_without_retries(stack, api, clips):
    fleet = stack.fleet("tracks")
    with fleet:
        (worker,) = fleet.start(1)
        vid = upload(api, many_tracks(clips), auto=1)
        done = wait_status(api, vid, {"playable", "transcode_failed"}, timeout=90)
        assert worker.alive(), worker.tail()
    (job,) = jobs_of(stack.env, vid)
    assert job["attempts"] == 1, job
    assert done["status"] == "playable", done


def test_mediainfo_over_its_memory_cap_is_a_permanent_failure(clips):
    from vasset.transcode.failures import classify
    from vasset.transcode.probe import UnsupportedMedia, probe

    cap = 112 << 20  # plenty for an ordinary clip (<60 MB); the 999-track file needs ~150 MB
    assert probe(media.landscape(clips), memory_limit=cap).format == "MPEG-4"
    with pytest.raises(UnsupportedMedia) as caught:
        probe(many_tracks(clips), memory_limit=cap)
    message, permanent = classify(caught.value)
    assert permanent and message.startswith("UnsupportedMedia: the file cannot be analysed")


# ---- 13. error text served by /video/status has no heap addresses and no worker paths


def test_public_error_drops_heap_addresses_and_paths():
    from vasset.transcode.failures import public_error

    assert (
        public_error("TranscodeFailed: [h264 @ 0x56286c52d580] Invalid NAL unit size (9 > 7).")
        == "TranscodeFailed: [h264] Invalid NAL unit size (9 > 7)."
    )
    assert (
        public_error("CorruptMedia: /var/tmp/vasset/job-3-1/source: Invalid data found")
        == "CorruptMedia: source: Invalid data found"
    )
    assert public_error(
        "InternalError: FileNotFoundError: [Errno 2] No such file or directory:"
        " '/tmp/v/job-600-1/out/hls/master.m3u8'"
    ).endswith("No such file or directory: 'master.m3u8'")
    # URLs, ratios and short codec tags are not paths or addresses.
    kept = "InvalidParameter: src http://example.com/a/b.mp4 answered 404; 16/9 N/A tag 0x31637661"
    assert public_error(kept) == kept


def test_a_real_ffmpeg_failure_is_classified_without_address_or_path(tmp_path, clips):
    from vasset.transcode.failures import classify
    from vasset.transcode.sandbox import FfmpegError, run_ffmpeg

    data = bytearray(media.landscape(clips).read_bytes())
    start = data.index(b"mdat") + 8
    data[start : start + 3000] = bytes((k * 7919) & 0xFF for k in range(3000))
    bad = tmp_path / "work" / "source.mp4"
    bad.parent.mkdir()
    bad.write_bytes(data)
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-xerror", "-i", str(bad)]
    result = asyncio.run(run_ffmpeg([*argv, "-f", "null", "-"], timeout=60, stall_timeout=60))
    assert not result.ok and " @ 0x" in result.stderr_tail
    message, _ = classify(FfmpegError(result))
    assert "0x" not in message and str(tmp_path) not in message, message
    assert message.startswith(("CorruptMedia: ", "TranscodeFailed: ")), message
