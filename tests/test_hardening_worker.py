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
        first = upload(api, media.landscape(clips), auto=1)
        worker.wait_event("claim_failed", timeout=20)
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
