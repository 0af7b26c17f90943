"""Upload hardening: many writers of one part, hostile numbers and headers, unnameable keys."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api, b64name
from tests.support.db import sql
from tests.support.server import ServerProcess
from tests.test_oss_uploads import (
    _oss_healthy,
    oss,
    oss_creds,
    oss_env,
    oss_other_creds,
    oss_service,
)
from vasset import errors
from vasset.storage.local import LocalBlobStore
from vasset.upload.partlocks import PartLocks

__all__ = [  # fixtures, imported for pytest
    "_oss_healthy",
    "oss",
    "oss_creds",
    "oss_env",
    "oss_other_creds",
    "oss_service",
]

KIB = 1024
PSIZE = 256 * KIB
#: Generous: a healthy server answers in milliseconds; a frozen one never does.
PROMPT = 20.0


def err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    return body


def start(api: Api, data: bytes, psize: int = PSIZE) -> dict:
    r = api.init("clip.mp4", data, psize)
    assert r.status_code == 200, r.text
    return r.json()


def storage_root(env: dict) -> Path:
    return Path(env["VASSET_STORAGE_URL"][len("file://") :])


def parts_dir(env: dict, upid: str) -> Path:
    (multipart_id,) = sql(env, "SELECT multipart_id FROM upload WHERE upload_id = :u", u=upid)[0]
    return storage_root(env) / "multipart" / multipart_id / "parts"


def part_free(folder: Path, pseq: int) -> bool:
    """Whether no process holds the part's lock (a writer has finished or given up)."""
    path = folder / f"{pseq}.lock"
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def wait_for(predicate, timeout: float = PROMPT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def half_put(port: int, api: Api, upid: str, pseq: int, body: bytes) -> socket.socket:
    """Start a part upload (with its hash) and leave it hanging mid-body."""
    params = {"upid": upid, "pseq": pseq, "hash": hashlib.md5(body).hexdigest()}
    url = httpx.URL(api.url("PUT", "/video/upload/upload", params))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(PROMPT)
    head = f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def finish_put(sock: socket.socket, body: bytes) -> tuple[int, bytes]:
    """Send the rest of a half_put body; returns (status, response bytes)."""
    sock.sendall(body[len(body) // 2 :])
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, raw
        raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    sock.close()
    return int(head.split()[1]), rest


def is_stored_or_busy(r: httpx.Response) -> bool:
    """200, or 409 UploadInProgress with Retry-After: the only answers to a concurrent PUT."""
    if r.status_code == 200:
        return True
    return (
        r.status_code == 409
        and r.json()["code"] == "UploadInProgress"
        and int(r.headers["retry-after"]) >= 1
    )


# ---- item 1: concurrent PUTs of one part


class Target:
    """A running service and two apps on it."""

    def __init__(self, url: str, port: int, main: dict, other: dict, proc=None) -> None:
        self.port = port
        self.api = Api(url, main["app_key"], main["app_secret"], timeout=PROMPT)
        self.other = Api(url, other["app_key"], other["app_secret"], timeout=PROMPT)
        self.proc = proc


@pytest.fixture(params=["local", "oss"])
def target(request, test_env, app_creds, other_creds, tmp_path):
    """A private local-disk server (it is SIGTERMed by the test), or the OSS-backed one."""
    if request.param == "oss":
        service = request.getfixturevalue("oss_service")
        yield Target(
            service.url,
            service.port,
            request.getfixturevalue("oss_creds"),
            request.getfixturevalue("oss_other_creds"),
        )
        return
    proc = ServerProcess(test_env, log_path=tmp_path / "storm.log").start()
    try:
        yield Target(proc.url, proc.port, app_creds, other_creds, proc)
    finally:
        proc.kill()


def test_part_storm_leaves_instance_responsive(target, request, test_env):
    data = os.urandom(3 * PSIZE + 4321)
    init = start(target.api, data)
    upid = init["upload_id"]
    part = data[:PSIZE]
    oss_server = request.getfixturevalue("oss") if target.proc is None else None
    puts_before = len(oss_server.ops("UploadPart")) if oss_server else 0
    holder = half_put(target.port, target.api, upid, 1, part)
    time.sleep(0.3)  # the holder reaches storage first (ordering only, nothing is timed)
    with ThreadPoolExecutor(31) as pool:
        storm = [pool.submit(target.api.put_part, upid, 1, part) for _ in range(31)]
        time.sleep(0.5)
        # Meanwhile every storage operation of other apps answers (init creates a multipart
        # upload, a part PUT writes and commits, status reads MySQL).
        other_data = os.urandom(PSIZE + 10)
        other = start(target.other, other_data)
        r = target.other.put_part(other["upload_id"], 1, other_data[:PSIZE])
        assert r.status_code == 200 and r.json()["received"] == 1, r.text
        r = target.other.call("GET", "/video/status", {"vid": other["vid"]})
        assert r.status_code == 200 and r.json()["status"] == "uploading"
        status, body = finish_put(holder, part)
        assert status == 200, body
        results = [f.result() for f in storm]
    assert all(is_stored_or_busy(r) for r in results), [r.text for r in results]
    assert sum(r.status_code == 200 for r in results) >= 1
    # stored once, and correctly
    rows = sql(
        test_env if target.proc else request.getfixturevalue("oss_env"),
        "SELECT p.pseq, p.md5 FROM upload_part p JOIN upload u ON u.id = p.upload_pk"
        " WHERE u.upload_id = :u",
        u=upid,
    )
    assert rows == [(1, hashlib.md5(part).hexdigest())]
    if oss_server:
        # the holder's part and the other app's part: none of the 31 copies reached OSS
        assert len(oss_server.ops("UploadPart")) - puts_before == 2
    else:
        marker = (parts_dir(test_env, upid) / "1.json").read_text()
        assert hashlib.md5(part).hexdigest() in marker
    for pseq in range(2, init["part_count"] + 1):
        r = target.api.put_part(upid, pseq, data[(pseq - 1) * PSIZE : pseq * PSIZE])
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "uploaded"
    assert r.json()["md5"] == hashlib.md5(data).hexdigest()
    if target.proc is not None:
        # SIGTERM still stops it (a parked pool thread used to keep it alive).
        target.proc.stop()
        assert target.proc.proc.returncode != -signal.SIGKILL


def test_second_instance_is_told_the_part_is_in_progress(server, api, test_env, tmp_path):
    other_instance = ServerProcess(test_env, log_path=tmp_path / "b.log").start()
    try:
        api_b = Api(other_instance.url, api.app_key, api.app_secret, timeout=PROMPT)
        data = os.urandom(3 * PSIZE)
        init = start(api, data)
        upid = init["upload_id"]
        folder = parts_dir(test_env, upid)
        parts = [data[i * PSIZE : (i + 1) * PSIZE] for i in range(3)]
        # part 1: A holds it, B is refused at once; A's client drops, so nothing is stored
        holder = half_put(server.port, api, upid, 1, parts[0])
        assert wait_for(lambda: not part_free(folder, 1))
        body = err(api_b.put_part(upid, 1, parts[0]), 409, "UploadInProgress")
        assert body["pseq"] == 1
        holder.close()
        assert wait_for(lambda: part_free(folder, 1))
        assert not list(folder.glob("1.*json")) and not list(folder.glob("*.tmp*"))
        r = api_b.put_part(upid, 1, parts[0])
        assert r.status_code == 200 and r.json()["received"] == 1, r.text
        # part 2: once A has stored it, B's copy gets the idempotent answer
        holder = half_put(server.port, api, upid, 2, parts[1])
        assert wait_for(lambda: not part_free(folder, 2))
        r = api_b.put_part(upid, 2, parts[1])
        assert is_stored_or_busy(r) and r.status_code == 409, r.text
        assert r.headers["retry-after"]
        assert finish_put(holder, parts[1])[0] == 200
        r = api_b.put_part(upid, 2, parts[1])
        assert r.status_code == 200 and r.json()["received"] == 2, r.text
        r = api_b.put_part(upid, 3, parts[2])
        assert r.json()["md5"] == hashlib.md5(data).hexdigest()
    finally:
        other_instance.stop()


def test_refused_or_dropped_parts_leave_no_marker(server, api, test_env):
    data = os.urandom(2 * PSIZE)
    init = start(api, data)
    upid = init["upload_id"]
    folder = parts_dir(test_env, upid)
    part = data[:PSIZE]
    err(api.put_part(upid, 1, part, hash="0" * 32), 400, "InvalidDigest")
    err(api.put_part(upid, 1, part[:-1]), 400, "InvalidPartSize")
    holder = half_put(server.port, api, upid, 1, part)
    assert wait_for(lambda: not part_free(folder, 1))
    holder.close()
    assert wait_for(lambda: part_free(folder, 1))
    assert sorted(p.name for p in folder.iterdir()) in ([], ["1.lock"])
    resume = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [1, 2]


def test_init_that_storage_refuses_leaves_no_video(test_env, app_creds, tmp_path):
    env = {**test_env, "VASSET_STORAGE_URL": f"file://{tmp_path / 'store'}"}
    proc = ServerProcess(env, log_path=tmp_path / "api.log").start()
    try:
        api = Api(proc.url, app_creds["app_key"], app_creds["app_secret"])
        before = video_count(test_env, api.app_key)
        multipart = tmp_path / "store" / "multipart"
        shutil.rmtree(multipart)
        multipart.write_text("not a folder")  # every create_multipart now fails
        err(api.init("x.mp4", b"x" * 1000, PSIZE), 503, "ServiceUnavailable")
        assert video_count(test_env, api.app_key) == before
    finally:
        proc.stop()


# ---- item 10: numbers and headers that used to answer 500


def video_count(env: dict, app_key: str) -> int:
    rows = sql(
        env,
        "SELECT COUNT(*) FROM video v JOIN app a ON a.id = v.app_id WHERE a.app_key = :k",
        k=app_key,
    )
    return rows[0][0]


def leftovers(env: dict, app_key: str) -> tuple[int, int, int]:
    uploads = sql(
        env,
        "SELECT COUNT(*) FROM upload u JOIN app a ON a.id = u.app_id WHERE a.app_key = :k",
        k=app_key,
    )[0][0]
    folders = len(list((storage_root(env) / "multipart").iterdir()))
    return video_count(env, app_key), uploads, folders


@pytest.mark.parametrize(
    ("over", "parameter"),
    [
        ({"priority": 2**31}, "priority"),
        ({"priority": -(2**31) - 1}, "priority"),
        ({"psize": 2**63}, "psize"),  # one part: psize far above fsize
        ({"psize": 10**30}, "psize"),
        ({"fsize": 2**63, "psize": 2**62}, "fsize"),
        ({"fsize": 10**30}, "fsize"),
        ({"psize": "9" * 5000}, "psize"),
    ],
)
def test_init_numbers_out_of_range_leave_nothing_behind(api, test_env, over, parameter):
    before = leftovers(test_env, api.app_key)
    params = {"fn": b64name("big.mp4"), "fsize": 1000, "psize": PSIZE, **over}
    body = err(api.call("POST", "/video/upload/init", params), 400, "InvalidParameter")
    assert body["parameter"] == parameter
    assert leftovers(test_env, api.app_key) == before


def test_init_largest_numbers_that_fit_are_accepted(api):
    params = {"fn": b64name("one.mp4"), "fsize": 1000, "psize": 2**63 - 1}
    r = api.call("POST", "/video/upload/init", {**params, "priority": 2**31 - 1})
    assert r.status_code == 200, r.text
    assert r.json()["part_count"] == 1


@pytest.mark.parametrize("pseq", [2**31, 2**63 - 1, 2**63, 10**30, "1" * 5000])
def test_huge_pseq_is_invalid_parameter(api, test_env, pseq):
    data = os.urandom(1000)
    init = start(api, data)
    body = err(api.put_part(init["upload_id"], pseq, data), 400, "InvalidParameter")
    assert body["parameter"] == "pseq"
    assert list(parts_dir(test_env, init["upload_id"]).iterdir()) == []


@pytest.mark.parametrize(
    "content_range",
    [
        "bytes 0-" + "9" * 5000 + "/1000",
        "bytes 0-999/" + "1" * 5000,
        "bytes " + "0" * 5000 + "-999/1000",
        "bytes 0-999/" + "1" * 30,
        "bytes 0-99999999999999999999/1000",
    ],
)
def test_content_range_with_huge_numbers_is_invalid(api, content_range):
    data = os.urandom(1000)
    init = start(api, data)
    r = api.call(
        "PUT",
        "/video/upload/upload",
        {"upid": init["upload_id"]},
        content=data,
        headers={"Content-Range": content_range},
    )
    err(r, 400, "InvalidContentRange")
    resume = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert resume["offset"] == 0 and resume["missing"] == [1]


def test_content_length_with_thousands_of_digits_is_not_a_500(server, api):
    data = os.urandom(1000)
    init = start(api, data)
    url = httpx.URL(api.url("PUT", "/video/upload/upload", {"upid": init["upload_id"], "pseq": 1}))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(PROMPT)
        head = f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Length: {'9' * 3000}"
        sock.sendall(head.encode() + b"\r\n\r\n" + data)
        answer = sock.recv(65536)
    status = int(answer.split()[1])
    assert 400 <= status < 500, answer[:300]


# ---- item 10: keys the local store cannot hold are missing objects


async def test_local_keys_outside_or_unnameable_are_missing(tmp_path):
    store = LocalBlobStore(tmp_path / "store")
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"outside the store")
    media = store.objects / "media"
    media.mkdir()
    (media / "link.mp4").symlink_to(secret)
    (media / "escape").symlink_to(tmp_path)
    (media / "loop").symlink_to(media / "loop")
    await store.put_bytes("media/real.mp4", b"inside")
    bad = [
        "media/link.mp4",
        "media/escape/secret.mp4",
        "../secret.mp4",
        "media/../../secret.mp4",
        "media/a\x00b.mp4",
        "media/" + "x" * 256 + ".mp4",
        "media/" + "é" * 200 + ".mp4",  # 400 bytes, 200 characters
        "media/real.mp4/child",
        "media/\ud800.mp4",  # a lone surrogate (no file name encodes it)
        "media/loop/x",
        "media/loop",
    ]
    try:
        for key in bad:
            assert await store.head(key) is None, key
            with pytest.raises(errors.ObjectNotFound):
                async for _ in store.read(key):
                    pass
            with pytest.raises(errors.ObjectNotFound):
                await store.download_file(key, tmp_path / "copy")
            with pytest.raises(errors.ObjectNotFound):
                await store.copy(key, "media/copied.mp4")
            await store.delete(key)  # a no-op
            assert store.local_path(key) is None or store.local_path(key).is_relative_to(
                store.objects
            )
        assert await store.list_keys("media/escape/") == []
        assert await store.list_keys("../") == []
        assert secret.read_bytes() == b"outside the store"
        assert (await store.head("media/real.mp4")).size == 6
    finally:
        await store.close()


async def test_part_locks_let_one_writer_in_and_bound_the_wait():
    locks = PartLocks()
    order: list[str] = []
    inside = [0, 0]  # writers inside the lock now, the most ever at once

    async def writer(name: str, wait: float) -> None:
        async with locks.hold("up", 1, wait):
            order.append(name)
            inside[0] += 1
            inside[1] = max(inside)
            await asyncio.sleep(0.05)
            inside[0] -= 1

    async with locks.hold("up", 1):
        with pytest.raises(errors.UploadInProgress):
            async with locks.hold("up", 1, wait=0.1):
                pass
        async with locks.hold("up", 2, wait=0.1):  # another part is not blocked
            pass
        waiters = [asyncio.create_task(writer(f"w{i}", 10)) for i in range(5)]
        await asyncio.sleep(0.05)
        assert order == []
    await asyncio.gather(*waiters)
    assert sorted(order) == [f"w{i}" for i in range(5)]
    assert inside[1] == 1, "two writers of one part held the lock at once"
    assert locks._held == {}


@pytest.mark.parametrize("suffix", ["\n", " ", "\r\n"])
def test_hashes_with_trailing_characters_are_invalid(api, suffix):
    data = os.urandom(1000)
    good = hashlib.md5(data).hexdigest()
    r = api.call(
        "POST",
        "/video/upload/init",
        {"fn": b64name("a.mp4"), "fsize": 1000, "psize": 1000, "hash": good + suffix},
    )
    assert err(r, 400, "InvalidParameter")["parameter"] == "hash"
    upid = start(api, data, 1000)["upload_id"]
    r = api.put_part(upid, 1, data, hash=good + suffix)
    assert err(r, 400, "InvalidParameter")["parameter"] == "hash"
