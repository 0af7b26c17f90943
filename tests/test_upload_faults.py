"""Crashes and lost hot state: SIGKILL mid-part, Redis FLUSHALL and restart mid-upload."""

from __future__ import annotations

import hashlib
import os
import socket
import time

import httpx
import pytest

from tests.support.api import Api
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

PSIZE = 256 * 1024


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_server(test_env, private_redis, tmp_path):
    env = {**test_env, "VASSET_REDIS_URL": private_redis.url}
    proc = ServerProcess(env, log_path=tmp_path / "server.log").start()
    yield proc
    proc.kill()


def send_half_part(port: int, api: Api, upid: str, pseq: int, body: bytes) -> socket.socket:
    """Start a part upload and leave it hanging mid-body."""
    url = httpx.URL(api.url("PUT", "/video/upload/upload", {"upid": upid, "pseq": pseq}))
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def test_sigkill_mid_part_then_resume_completes(test_env, private_redis, app_creds, tmp_path):
    env = {**test_env, "VASSET_REDIS_URL": private_redis.url}
    server = ServerProcess(env, log_path=tmp_path / "a.log").start()
    api = Api(server.url, app_creds["app_key"], app_creds["app_secret"])
    data = os.urandom(4 * PSIZE + 999)
    init = api.init("crash.mp4", data, PSIZE).json()
    parts = [data[i * PSIZE : (i + 1) * PSIZE] for i in range(init["part_count"])]
    assert api.put_part(init["upload_id"], 1, parts[0]).status_code == 200
    sock = send_half_part(server.port, api, init["upload_id"], 2, parts[1])
    time.sleep(0.3)
    server.kill()
    sock.close()
    server2 = ServerProcess(env, log_path=tmp_path / "b.log").start()
    try:
        api2 = Api(server2.url, app_creds["app_key"], app_creds["app_secret"])
        resume = api2.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
        assert resume["missing"] == [2, 3, 4, 5] and resume["offset"] == PSIZE
        for pseq in resume["missing"]:
            r = api2.put_part(init["upload_id"], pseq, parts[pseq - 1])
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "uploaded"
        assert r.json()["md5"] == hashlib.md5(data).hexdigest()
    finally:
        server2.kill()


def test_flushall_mid_upload_still_completes(own_server, private_redis, app_creds):
    api = Api(own_server.url, app_creds["app_key"], app_creds["app_secret"])
    data = os.urandom(6 * PSIZE)
    init = api.init("flush.mp4", data, PSIZE).json()
    parts = [data[i * PSIZE : (i + 1) * PSIZE] for i in range(6)]
    for pseq in (1, 2, 4):
        assert api.put_part(init["upload_id"], pseq, parts[pseq - 1]).status_code == 200
    private_redis.client().flushall()
    resume = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert resume["missing"] == [3, 5, 6] and resume["offset"] == 2 * PSIZE
    for pseq in (3, 5, 6):
        r = api.put_part(init["upload_id"], pseq, parts[pseq - 1])
    assert r.json()["status"] == "uploaded" and r.json()["md5"] == hashlib.md5(data).hexdigest()


def test_redis_down_is_503_and_restart_recovers(own_server, private_redis, app_creds):
    api = Api(own_server.url, app_creds["app_key"], app_creds["app_secret"])
    data = os.urandom(3 * PSIZE)
    init = api.init("down.mp4", data, PSIZE).json()
    assert api.put_part(init["upload_id"], 1, data[:PSIZE]).status_code == 200
    private_redis.stop()
    r = api.put_part(init["upload_id"], 2, data[PSIZE : 2 * PSIZE])
    assert r.status_code == 503 and r.json()["code"] == "ServiceUnavailable"
    assert int(r.headers["retry-after"]) >= 1
    # the upload token path does not need Redis at all
    r = httpx.put(
        own_server.url + "/video/upload/upload",
        params={"upid": init["upload_id"], "pseq": 2, "token": init["upload_token"]},
        content=data[PSIZE : 2 * PSIZE],
    )
    assert r.status_code == 200, r.text
    private_redis.start()
    for _ in range(50):
        r = api.put_part(init["upload_id"], 3, data[2 * PSIZE :])
        if r.status_code != 503:
            break
        time.sleep(0.2)
    assert r.json()["status"] == "uploaded" and r.json()["md5"] == hashlib.md5(data).hexdigest()


def test_per_app_rate_limit_answers_429(test_env, app_creds, tmp_path):
    env = {**test_env, "VASSET_RATE_LIMIT": "5"}
    server = ServerProcess(env, log_path=tmp_path / "rate.log").start()
    try:
        api = Api(server.url, app_creds["app_key"], app_creds["app_secret"])
        codes = []
        for _ in range(3):
            start = time.time()
            codes = [api.call("GET", "/video/upload/limits").status_code for _ in range(12)]
            if time.time() - start < 0.9:  # all twelve fell in one or two one-second windows
                break
        assert 429 in codes and 200 in codes, codes
        r = next(
            r
            for r in (api.call("GET", "/video/upload/limits") for _ in range(12))
            if r.status_code == 429
        )
        assert r.json()["code"] == "Throttled" and r.headers["retry-after"] == "1"
        time.sleep(1.1)
        assert api.call("GET", "/video/upload/limits").status_code == 200
    finally:
        server.stop()


def test_mysql_unreachable_is_503_not_500(test_env, app_creds, tmp_path):
    from tests.support.server import free_port

    env = {**test_env, "VASSET_DATABASE_URL": f"mysql+asyncmy://root@127.0.0.1:{free_port()}/x"}
    server = ServerProcess(env, log_path=tmp_path / "nodb.log").start()
    try:
        api = Api(server.url, app_creds["app_key"], app_creds["app_secret"])
        r = api.call("GET", "/video/status", {"vid": 1})
        assert r.status_code == 503 and r.json()["code"] == "ServiceUnavailable"
        assert int(r.headers["retry-after"]) >= 1
        assert "Traceback" not in r.text
    finally:
        server.stop()
