"""Proxied uploads on OSS, end to end: a real `vasset serve` against the OSS test server.

The OSS server runs in this process (so tests can stop it, inject faults and look inside);
vasset runs as a subprocess with its own database and VASSET_STORAGE_URL=oss://.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.db import drop_database, sql
from tests.support.server import ROOT, ServerProcess
from vasset.apps.service import create_app_keys
from vasset.db import create_engine, ensure_database, upgrade

PSIZE = 256 * 1024
PREFIX = "pfx"
#: Presigned URLs and PostObject policies live this long in these tests (well inside the
#: 15 minutes of clock skew OSS tolerates, so the clock can be shifted past them).
URL_TTL = 300
#: Bearer token of GET /metrics on the OSS-backed service.
METRICS_TOKEN = "metrics-" + secrets.token_hex(8)


# ---- fixtures (imported by tests/test_direct_upload.py too)


@pytest.fixture(scope="module")
def oss(tmp_path_factory) -> Iterator[OssServer]:
    """One OSS test server for the module, in this process."""
    data = tmp_path_factory.mktemp("oss-data")
    server = OssServer(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET, data_dir=data)
    server.start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _oss_healthy(request) -> Iterator[None]:
    """Every test leaves the OSS server running, on time and without pending faults."""
    yield
    if "oss" in request.fixturenames:
        server = request.getfixturevalue("oss")
        server.clear_faults()
        server.clock_offset = 0
        server.start()


@pytest.fixture(scope="module")
def oss_env(test_env, oss) -> Iterator[dict[str, str]]:
    """VASSET_* of an OSS-backed service: own database and Redis prefix, storage in OSS."""
    tag = secrets.token_hex(3)
    env = {
        **test_env,
        "VASSET_DATABASE_URL": f"{test_env['VASSET_DATABASE_URL']}_oss{tag}",
        "VASSET_REDIS_PREFIX": f"{test_env['VASSET_REDIS_PREFIX']}oss{tag}:",
        "VASSET_STORAGE_URL": f"oss://{OSS_BUCKET}/{PREFIX}",
        "VASSET_OSS_ENDPOINT": oss.endpoint,
        "VASSET_OSS_BUCKET": OSS_BUCKET,
        "VASSET_OSS_ACCESS_KEY_ID": OSS_ACCESS_KEY_ID,
        "VASSET_OSS_ACCESS_KEY_SECRET": OSS_ACCESS_KEY_SECRET,
        "VASSET_OSS_DIRECT_URL_TTL": str(URL_TTL),
        "VASSET_OSS_POST_MAX_SIZE": str(2 << 20),
        "VASSET_METRICS_TOKEN": METRICS_TOKEN,
    }
    url = env["VASSET_DATABASE_URL"]
    # in-process (no interpreter start): create and migrate the database, make two apps
    env["_APPS"] = json.dumps(asyncio.run(_prepare_database(url, ["oss-main", "oss-other"])))
    yield env
    drop_database(url)


async def _prepare_database(url: str, app_names: list[str]) -> list[dict]:
    await ensure_database(url)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine)
        return [await create_app_keys(engine, name) for name in app_names]
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def oss_service(oss_env, tmp_path_factory) -> Iterator[ServerProcess]:
    """A real `vasset serve` storing in OSS."""
    log = tmp_path_factory.mktemp("oss-logs") / "server.log"
    proc = ServerProcess(oss_env, log_path=log).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def oss_creds(oss_env) -> dict:
    """Credentials of an app of the OSS-backed service."""
    return json.loads(oss_env["_APPS"])[0]


@pytest.fixture(scope="module")
def oss_other_creds(oss_env) -> dict:
    """A second app of the OSS-backed service, for isolation."""
    return json.loads(oss_env["_APPS"])[1]


@pytest.fixture
def oapi(oss_service, oss_creds) -> Api:
    """A signing client of the OSS-backed service."""
    return Api(oss_service.url, oss_creds["app_key"], oss_creds["app_secret"])


@pytest.fixture
def other_oapi(oss_service, oss_other_creds) -> Api:
    """The other app's client."""
    return Api(oss_service.url, oss_other_creds["app_key"], oss_other_creds["app_secret"])


# ---- helpers


def err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    return body


def start(api: Api, data: bytes, psize: int = PSIZE, **extra) -> dict:
    r = api.init("clip.mp4", data, psize, **extra)
    assert r.status_code == 200, r.text
    return r.json()


def cut(data: bytes, psize: int = PSIZE) -> list[bytes]:
    return [data[i : i + psize] for i in range(0, len(data), psize)]


def upload_row(env: dict, upid: str) -> tuple[str, str, int]:
    """(full OSS key, OSS upload id, direct flag) of an upload."""
    rows = sql(
        env,
        "SELECT storage_key, multipart_id, direct FROM upload WHERE upload_id = :u",
        u=upid,
    )
    key, multipart_id, direct = rows[0]
    return f"{PREFIX}/{key}", multipart_id, direct


def recorded_parts(env: dict, upid: str) -> list[int]:
    rows = sql(
        env,
        "SELECT p.pseq FROM upload_part p JOIN upload u ON u.id = p.upload_pk"
        " WHERE u.upload_id = :u ORDER BY p.pseq",
        u=upid,
    )
    return [r[0] for r in rows]


def metric(base_url: str, name: str) -> int:
    """One counter of GET /metrics (Prometheus text format)."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    r = httpx.get(base_url + "/metrics", headers=headers)
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in {r.text}")


def send_half_part(port: int, api: Api, upid: str, pseq: int, body: bytes) -> socket.socket:
    """Start a part upload and leave it hanging mid-body."""
    url = httpx.URL(api.url("PUT", "/video/upload/upload", {"upid": upid, "pseq": pseq}))
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ---- tests


def test_full_upload_completes_multipart_only_after_verification(oapi, oss, oss_env):
    data = os.urandom(3 * PSIZE + 1234)
    init = start(oapi, data)
    key, multipart_id, direct = upload_row(oss_env, init["upload_id"])
    assert direct == 0 and key.startswith(f"{PREFIX}/sources/")
    parts = cut(data)
    for pseq, body in enumerate(parts[:-1], 1):
        r = oapi.put_part(init["upload_id"], pseq, body)
        assert r.status_code == 200 and r.json()["received"] == pseq, r.text
    # the parts are OSS parts; no object exists before the last part is verified
    assert oss.part_numbers(multipart_id) == [1, 2, 3]
    assert key not in oss.object_keys()
    before = len(oss.requests)
    r = oapi.put_part(init["upload_id"], 4, parts[-1])
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    ops = [op for _, op in oss.requests[before:]]
    # parts checked against ListParts first, then completed; in order: no verifying re-read
    assert ops.index("ListParts") < ops.index("CompleteMultipartUpload")
    assert "GetObject" not in ops
    assert multipart_id not in oss.upload_ids()
    assert hashlib.md5(oss.get_bytes(key)).hexdigest() == hashlib.md5(data).hexdigest()
    rows = sql(oss_env, "SELECT status, hash FROM video WHERE id = :v", v=done["vid"])
    assert rows == [("uploaded", hashlib.md5(data).hexdigest())]


def test_out_of_order_upload_verifies_by_one_read(oapi, oss, oss_env):
    data = os.urandom(3 * PSIZE)
    init = start(oapi, data)
    key, _, _ = upload_row(oss_env, init["upload_id"])
    parts = cut(data)
    for pseq in (3, 1):
        assert oapi.put_part(init["upload_id"], pseq, parts[pseq - 1]).status_code == 200
    before = len(oss.requests)
    done = oapi.put_part(init["upload_id"], 2, parts[1]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    ops = [op for _, op in oss.requests[before:]]
    assert ops.index("CompleteMultipartUpload") < ops.index("GetObject")
    assert oss.get_bytes(key) == data


def test_lying_whole_file_hash_is_422_and_leaves_no_object(oapi, oss, oss_env):
    data = os.urandom(2 * PSIZE + 10)
    lie = hashlib.md5(b"another file").hexdigest()
    r = oapi.init("lie.mp4", data, PSIZE, with_hash=False, hash=lie)
    init = r.json()
    assert init["md5"] == lie
    key, multipart_id, _ = upload_row(oss_env, init["upload_id"])
    parts = cut(data)
    for pseq, body in enumerate(parts, 1):
        r = oapi.put_part(init["upload_id"], pseq, body)
    body = err(r, 422, "HashMismatch")
    assert body["md5"] == hashlib.md5(data).hexdigest()
    assert key not in oss.object_keys()
    assert multipart_id not in oss.upload_ids()
    status = oapi.call("GET", "/video/status", {"vid": init["vid"]}).json()
    assert status["status"] == "upload_failed"
    # neither hash became instant-uploadable
    for h in (init["md5"], hashlib.md5(data).hexdigest()):
        again = oapi.call(
            "POST",
            "/video/upload/init",
            {"fn": "eC5tcDQ=", "fsize": len(data), "psize": PSIZE, "hash": h},
        ).json()
        assert "instant" not in again


def test_oss_down_mid_upload_is_503_then_resend_completes(oapi, oss, oss_env, oss_service):
    data = os.urandom(4 * PSIZE)
    init = start(oapi, data)
    upid = init["upload_id"]
    key, multipart_id, _ = upload_row(oss_env, upid)
    parts = cut(data)
    assert oapi.put_part(upid, 1, parts[0]).status_code == 200
    oss.stop()
    # between parts: the whole part arrives, OSS cannot take it, retries run out
    r = oapi.put_part(upid, 2, parts[1])
    err(r, 503, "ServiceUnavailable")
    assert int(r.headers["retry-after"]) >= 1
    # during a part: OSS goes away while the body streams
    oss.start()
    streams = len(oss.ops("UploadPart"))
    sock = send_half_part(oss_service.port, oapi, upid, 3, parts[2])
    assert wait_for(lambda: len(oss.ops("UploadPart")) > streams)  # part 3 streams to OSS
    oss.stop()
    sock.sendall(parts[2][len(parts[2]) // 2 :])
    sock.settimeout(30)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"retry-after" in answer.lower()
    # resume still works (MySQL is the record) and says what to re-send
    resume = oapi.call("GET", "/video/upload/resume", {"upid": upid})
    err(resume, 503, "ServiceUnavailable")
    oss.start()
    resume = oapi.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [2, 3, 4] and resume["offset"] == PSIZE
    for pseq in resume["missing"]:
        r = oapi.put_part(upid, pseq, parts[pseq - 1])
        assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data
    assert multipart_id not in oss.upload_ids()


def test_one_upload_part_500_is_retried_invisibly(oapi, oss, oss_env):
    data = os.urandom(2 * PSIZE + 5)
    init = start(oapi, data)
    key, _, _ = upload_row(oss_env, init["upload_id"])
    parts = cut(data)
    assert oapi.put_part(init["upload_id"], 1, parts[0]).status_code == 200
    attempts = len(oss.ops("UploadPart"))
    oss.fail_next(op="UploadPart", status=500)
    r = oapi.put_part(init["upload_id"], 2, parts[1])
    assert r.status_code == 200, r.text
    assert len(oss.ops("UploadPart")) == attempts + 2  # the failed try and its retry
    done = oapi.put_part(init["upload_id"], 3, parts[2]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data


def test_dropped_client_leaves_no_recorded_part_and_no_oss_part(oapi, oss, oss_env, oss_service):
    data = os.urandom(3 * PSIZE)
    init = start(oapi, data)
    upid = init["upload_id"]
    key, multipart_id, _ = upload_row(oss_env, upid)
    parts = cut(data)
    assert oapi.put_part(upid, 1, parts[0]).status_code == 200
    streams = len(oss.ops("UploadPart"))
    sock = send_half_part(oss_service.port, oapi, upid, 2, parts[1])
    assert wait_for(lambda: len(oss.ops("UploadPart")) > streams)  # the OSS stream is open
    time.sleep(0.2)
    sock.close()
    time.sleep(1.0)  # the API notices, aborts its OSS request
    assert recorded_parts(oss_env, upid) == [1]
    assert oss.part_numbers(multipart_id) == [1]
    resume = oapi.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [2, 3]
    for pseq in (2, 3):
        r = oapi.put_part(upid, pseq, parts[pseq - 1])
    assert r.json()["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data


def test_janitor_aborts_expired_multipart_upload(oapi, oss, oss_env):
    data = os.urandom(2 * PSIZE)
    init = start(oapi, data)
    upid = init["upload_id"]
    _, multipart_id, _ = upload_row(oss_env, upid)
    assert oapi.put_part(upid, 1, data[:PSIZE]).status_code == 200
    assert multipart_id in oss.upload_ids()
    sql(oss_env, "UPDATE upload SET expires_at = :t WHERE upload_id = :u", t=1, u=upid)
    out = subprocess.run(
        [sys.executable, "-m", "vasset", "janitor"],
        env={**os.environ, **oss_env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert multipart_id not in oss.upload_ids()
    assert sql(oss_env, "SELECT status FROM upload WHERE upload_id = :u", u=upid) == [("expired",)]
    err(oapi.call("GET", "/video/upload/resume", {"upid": upid}), 404, "UploadNotFound")


def test_delete_removes_oss_object_but_shared_bytes_survive(oapi, oss, oss_env):
    data = os.urandom(PSIZE + 77)
    done = oapi.upload("orig.mp4", data, PSIZE)
    assert done["status"] == "uploaded"
    twin = start(oapi, data)
    assert twin["instant"] is True
    key = (
        PREFIX
        + "/"
        + sql(oss_env, "SELECT storage_uri FROM video WHERE id = :v", v=done["vid"])[0][0]
    )
    assert key in oss.object_keys()
    r = oapi.call("POST", "/video/delete", {"vid": done["vid"]})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert key in oss.object_keys()  # the instant twin still references the bytes
    assert oapi.call("GET", "/video/status", {"vid": twin["vid"]}).json()["status"] == "uploaded"
    r = oapi.call("POST", "/video/delete", {"vid": twin["vid"]})
    assert r.status_code == 200
    assert key not in oss.object_keys()
    err(oapi.call("GET", "/video/status", {"vid": twin["vid"]}), 404, "VideoNotFound")


def test_delete_during_upload_aborts_oss_multipart(oapi, oss, oss_env):
    data = os.urandom(2 * PSIZE)
    init = start(oapi, data)
    _, multipart_id, _ = upload_row(oss_env, init["upload_id"])
    assert oapi.put_part(init["upload_id"], 1, data[:PSIZE]).status_code == 200
    assert oapi.call("POST", "/video/delete", {"vid": init["vid"]}).status_code == 200
    assert multipart_id not in oss.upload_ids()
    err(oapi.put_part(init["upload_id"], 2, data[PSIZE:]), 409, "UploadAborted")


def test_proxied_upload_counts_received_bytes(oapi, oss_service):
    data = os.urandom(PSIZE + 3)
    before = metric(oss_service.url, "vasset_upload_bytes_received_total")
    assert oapi.upload("count.mp4", data, PSIZE)["status"] == "uploaded"
    after = metric(oss_service.url, "vasset_upload_bytes_received_total")
    assert after - before == len(data)


def test_parallel_parts_in_random_order(oapi, oss, oss_env):
    data = os.urandom(8 * PSIZE + 100)
    init = start(oapi, data)
    key, _, _ = upload_row(oss_env, init["upload_id"])
    parts = cut(data)
    order = list(range(1, len(parts) + 1))
    random.shuffle(order)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda n: oapi.put_part(init["upload_id"], n, parts[n - 1]), order))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    done = [r.json() for r in answers if r.json().get("status") == "uploaded"]
    assert len(done) >= 1 and done[0]["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data


def test_whole_file_mode_on_oss(oapi, oss, oss_env):
    data = os.urandom(3 * PSIZE + 50)
    init = start(oapi, data)
    key, _, _ = upload_row(oss_env, init["upload_id"])

    def put_range(first: int, last: int) -> httpx.Response:
        return oapi.call(
            "PUT",
            "/video/upload/upload",
            {"upid": init["upload_id"]},
            content=data[first : last + 1],
            headers={"Content-Range": f"bytes {first}-{last}/{len(data)}"},
        )

    r = put_range(0, 2 * PSIZE + 10)  # two whole parts stored, the tail is dropped
    assert r.status_code == 200 and r.json()["offset"] == 2 * PSIZE, r.text
    done = put_range(2 * PSIZE, len(data) - 1).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data


def test_complete_failing_in_oss_is_503_and_the_retry_completes(oapi, oss, oss_env):
    data = os.urandom(2 * PSIZE + 1)
    init = start(oapi, data)
    key, multipart_id, _ = upload_row(oss_env, init["upload_id"])
    parts = cut(data)
    for pseq in (1, 2):
        assert oapi.put_part(init["upload_id"], pseq, parts[pseq - 1]).status_code == 200
    oss.fail_next(op="CompleteMultipartUpload", status=503, count=10)
    err(oapi.put_part(init["upload_id"], 3, parts[2]), 503, "ServiceUnavailable")
    assert key not in oss.object_keys() and multipart_id in oss.upload_ids()
    oss.clear_faults()
    # every part is stored: re-sending the last one (or resume) finishes the upload
    done = oapi.put_part(init["upload_id"], 3, parts[2]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    assert oss.get_bytes(key) == data


def test_resume_recovers_parts_oss_holds_but_mysql_lost(oapi, oss, oss_env):
    data = os.urandom(3 * PSIZE)
    init = start(oapi, data)
    upid = init["upload_id"]
    parts = cut(data)
    for pseq in (1, 2):
        assert oapi.put_part(upid, pseq, parts[pseq - 1]).status_code == 200
    # a crash between OSS storing part 2 and MySQL recording it
    sql(
        oss_env,
        "DELETE p FROM upload_part p JOIN upload u ON u.id = p.upload_pk"
        " WHERE u.upload_id = :u AND p.pseq = 2",
        u=upid,
    )
    resume = oapi.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [3] and resume["offset"] == 2 * PSIZE
    done = oapi.put_part(upid, 3, parts[2]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
