"""tus uploads under crashes, Redis loss, OSS, concurrency, expiry and deletion (raw sockets)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.oss_server import OssServer
from tests.support.db import sql
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tests.support.tus_raw import (
    Answer,
    api_of,
    assert_completed,
    assert_gone,
    create,
    files_get,
    md5,
    meta,
    offset_of,
    own_server,
    patch,
    patch_file,
    patch_when_unlocked,
    read_answer,
    request,
    run_janitor,
    send_all,
    start_patch,
    ticket,
    tus_headers,
    wait_offset,
)
from tests.test_oss_uploads import PREFIX, _oss_healthy, oss, oss_creds, oss_env

__all__ = ["_oss_healthy", "oss", "oss_creds", "oss_env"]  # fixtures, imported for pytest

KIB = 1024
MIB = 1024 * KIB


def storage_key(env: dict[str, str], path: str) -> str:
    """The storage key of a protocol upload (its parts, tail and final object)."""
    upid = path.rsplit("/", 1)[1]
    return sql(env, "SELECT storage_key FROM upload WHERE upload_id = :u", u=upid)[0][0]


def stored_bytes(env: dict[str, str], vid: str, oss: OssServer | None = None) -> bytes:
    """A video's source object, read from the store itself."""
    key = sql(env, "SELECT storage_uri FROM video WHERE id = :v", v=vid)[0][0]
    if oss is not None:
        return oss.get_bytes(f"{PREFIX}/{key}")
    return (Path(env["VASSET_STORAGE_URL"][len("file://") :]) / "objects" / key).read_bytes()


def check_video(
    srv: ServerProcess, creds: dict, env: dict, vid: str, data: bytes, oss: OssServer | None = None
) -> dict:
    """The video's MD5 and size are data's and its stored bytes are data; its mediainfo."""
    info = api_of(srv, creds).call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert info["md5"] == md5(data) and info["file_size"] == len(data), info
    assert stored_bytes(env, vid, oss) == data
    return info


def cut_and_resume(
    srv: ServerProcess,
    env: dict[str, str],
    tmp_path: Path,
    creds: dict,
    redis_server: RedisServer,
    data: bytes,
    sizes: list[int],
) -> tuple[ServerProcess, str, str, str]:
    """PATCH data in sizes, cut one, kill -9 mid-PATCH, FLUSHALL, restart, resume, complete.

    Returns (the restarted server, upload path, ticket, vid).
    """
    tkt = ticket(api_of(srv, creds))
    path, created = create(srv.port, tkt, len(data), **meta("crash.mp4"))
    vid = created.headers["vasset-vid"]
    done = 0
    for size in sizes:
        a = patch(srv.port, path, tkt, done, data[done : done + size])
        assert a.status == 204, a
        done += size
        assert int(a.headers["upload-offset"]) == done, a
    assert offset_of(srv.port, path, tkt) == done
    # a body the client cuts keeps what arrived
    cut = 54_321
    start_patch(srv.port, path, tkt, done, 150_000, data[done : done + cut]).close()
    assert wait_offset(srv.port, path, tkt, done + cut) == done + cut
    done += cut
    reported = done
    # the next PATCH announces 200_001 bytes and stalls after 100_003 of them
    half = 100_003
    sock = start_patch(srv.port, path, tkt, done, 200_001, data[done : done + half])
    time.sleep(1.0)  # the server reads (and may store) the half that arrived
    srv.kill()
    sock.close()
    redis_server.client().flushall()
    again = own_server(env, tmp_path, "restarted")
    try:
        offset = offset_of(again.port, path, tkt)
        # every byte HEAD reported survives; nothing past what was sent can appear
        assert reported <= offset <= done + half, (reported, offset, done + half)
        rest = data[offset : offset + 77_777]
        first = patch_when_unlocked(again.port, path, tkt, offset, rest)
        assert first.status == 204, first
        final = send_all(again.port, path, tkt, data, offset + len(rest), [61_441, 99_999])
        assert_completed(final, data, vid)
    except BaseException:
        again.stop()
        raise
    return again, path, tkt, vid


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test alone, so it can be flushed."""
    server = RedisServer().start()
    yield server
    server.stop()


# ---- 1. crash and Redis loss on local storage


def test_sigkill_mid_patch_and_flushall_lose_no_reported_byte(
    test_env, app_creds, private_redis, tmp_path
):
    env = {**test_env, "VASSET_REDIS_URL": private_redis.url, "VASSET_REDIS_PREFIX": "tusdur:"}
    data = os.urandom(2 * MIB + 12_347)
    srv = own_server(env, tmp_path, "first")
    try:
        sizes = [65_537, 200_003, 7, 300_001, 1]
        again, path, tkt, vid = cut_and_resume(
            srv, env, tmp_path, app_creds, private_redis, data, sizes
        )
    finally:
        srv.kill()
    try:
        state = files_get(again.port, path, tkt)
        assert state["md5"] == md5(data) and state["status"] == "uploaded"
        assert state["offset"] == state["length"] == state["size"] == len(data)
        assert check_video(again, app_creds, env, vid, data)["source_name"] == "crash.mp4"
    finally:
        again.stop()


# ---- 2. the same on OSS, with PATCHes smaller than a part


def test_oss_small_patches_survive_sigkill_and_flushall(
    oss: OssServer, oss_env, oss_creds, private_redis, tmp_path
):
    env = {**oss_env, "VASSET_REDIS_URL": private_redis.url, "VASSET_REDIS_PREFIX": "tusoss:"}
    data = os.urandom(700 * KIB + 4_321)
    srv = own_server(env, tmp_path, "first")
    try:
        # every PATCH under OSS's 100 KiB minimum part: the tails must be kept across PATCHes
        sizes = [30_001, 99_999, 1, 65_536, 45_678, 12_345, 88_888]
        again, path, tkt, vid = cut_and_resume(
            srv, env, tmp_path, oss_creds, private_redis, data, sizes
        )
    finally:
        srv.kill()
    try:
        assert files_get(again.port, path, tkt)["md5"] == md5(data)
        check_video(again, oss_creds, env, vid, data, oss)
    finally:
        again.stop()


# ---- 3. two PATCHes at once through two API instances


def test_concurrent_patch_on_second_instance_is_refused_at_once(test_env, app_creds, tmp_path):
    one = own_server(test_env, tmp_path, "one")
    two = own_server(test_env, tmp_path, "two")
    try:
        tkt = ticket(api_of(one, app_creds))
        data = os.urandom(600 * KIB + 3)
        path, created = create(one.port, tkt, len(data), **meta("race.mp4"))
        slow_len, piece = 256 * KIB, 16 * KIB
        sock = start_patch(one.port, path, tkt, 0, slow_len, data[:piece])
        answers: list[Answer] = []

        def trickle() -> None:
            # the rest of the first PATCH's body, slowly: 15 pieces, ~4 s
            for at in range(piece, slow_len, piece):
                time.sleep(0.27)
                sock.sendall(data[at : at + piece])
            answers.append(read_answer(sock))

        slow = threading.Thread(target=trickle)
        slow.start()
        time.sleep(0.6)  # the first PATCH holds the upload by now
        t0 = time.monotonic()
        second = patch(two.port, path, tkt, 0, data[:50_000])
        elapsed = time.monotonic() - t0
        first_still_running = slow.is_alive()
        slow.join(30)
        assert first_still_running, "the first PATCH ended before the second was answered"
        assert second.status in (423, 409), second
        if second.status == 423:
            assert second.json()["code"] == "UploadLocked", second
        assert elapsed < 1.5, f"the second PATCH waited {elapsed:.2f}s"
        assert answers and answers[0].status == 204, answers
        assert int(answers[0].headers["upload-offset"]) == slow_len
        # exactly one proceeded: the offset is the first PATCH's alone
        assert offset_of(two.port, path, tkt) == slow_len
        final = send_all(two.port, path, tkt, data, slow_len, [100_001])
        assert_completed(final, data, created.headers["vasset-vid"])
    finally:
        one.stop()
        two.stop()


@pytest.mark.parametrize(
    ("store", "sizes"),
    [("file", (300 * KIB, 200_000)), ("oss", (300 * KIB, 200_000)), ("oss", (60_000, 50_000))],
    ids=["file-part", "oss-part", "oss-tail"],
)
def test_a_writer_frozen_past_its_lease_cannot_change_stored_bytes(
    request, store, sizes, test_env, app_creds, tmp_path
):
    """A request whose server froze past the write lease must not touch what the next wrote."""
    if store == "oss":
        env, creds = request.getfixturevalue("oss_env"), request.getfixturevalue("oss_creds")
    else:
        env, creds = test_env, app_creds
    env = {**env, "VASSET_TUS_LOCK_TTL": "2"}
    one, two = own_server(env, tmp_path, "zombie"), own_server(env, tmp_path, "next")
    zombie_len, next_len = sizes
    try:
        tkt = ticket(api_of(one, creds))
        data, garbage = os.urandom(500 * KIB + 1), os.urandom(zombie_len)
        path, created = create(one.port, tkt, len(data), **meta("frozen.mp4"))
        half = zombie_len // 2
        sock = start_patch(one.port, path, tkt, 0, zombie_len, garbage[:half])
        time.sleep(1.0)
        # the zombie is inside its body, holding the lease
        assert patch(two.port, path, tkt, 0, data[:1]).status == 423
        pid = one.proc.pid if one.proc else 0
        os.killpg(pid, signal.SIGSTOP)
        try:
            time.sleep(3.5)  # its lease (2 s) runs out; it cannot renew while stopped
            taken = patch(two.port, path, tkt, 0, data[:next_len])
        finally:
            os.killpg(pid, signal.SIGCONT)
        sock.sendall(garbage[half:])
        late = read_answer(sock)
        if taken.status != 204:
            # Refused, retryable: local disk locks the part file the zombie still holds (409);
            # or the zombie froze inside its lease renewal's transaction, so its row lock made
            # the next writer's lease wait until MySQL gave up (503, "the database is busy").
            refusal = (taken.status, taken.json()["code"])
            assert refusal in ((409, "UploadInProgress"), (503, "ServiceUnavailable")), taken
            taken = patch_when_unlocked(two.port, path, tkt, 0, data[:next_len])
        assert taken.status == 204, taken
        assert late.status in (409, 423), late  # it lost the lease: nothing of it counts
        assert offset_of(two.port, path, tkt) == next_len
        final = send_all(two.port, path, tkt, data, next_len, [120_001])
        assert_completed(final, data, created.headers["vasset-vid"])
        oss = request.getfixturevalue("oss") if store == "oss" else None
        stored = stored_bytes(env, created.headers["vasset-vid"], oss)
        assert md5(stored) == md5(data), "the stored object is not the bytes whose MD5 was reported"
    finally:
        one.stop()
        two.stop()


def test_oss_ended_uploads_leave_no_tail_and_no_multipart_upload(
    oss: OssServer, oss_env, oss_creds, tmp_path
):
    srv = own_server(oss_env, tmp_path, "ends", VASSET_UPLOAD_TTL="3")
    try:
        api = api_of(srv, oss_creds)
        tkt = ticket(api, uses=4)
        data = os.urandom(400 * KIB)
        ended: dict[str, str] = {}
        for how in ("terminated", "video_deleted", "expired", "completed"):
            path, created = create(srv.port, tkt, len(data), **meta(f"{how}.mp4"))
            # a whole part, then 50_000 bytes that wait in a tail object
            assert send_all(srv.port, path, tkt, data[:200_000], 0, [150_000, 50_000]).status == 204
            key = storage_key(oss_env, path)
            assert [k for k in oss.object_keys() if k.startswith(f"{PREFIX}/{key}.tail")]
            ended[how] = path
            if how == "terminated":
                assert request(srv.port, "DELETE", path, tus_headers(tkt)).status == 204
            elif how == "video_deleted":
                vid = created.headers["vasset-vid"]
                assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
            elif how == "completed":
                send_all(srv.port, path, tkt, data, 200_000, [250_000])
        time.sleep(3.5)
        run_janitor(oss_env)
        keys, open_ids = oss.object_keys(), oss.upload_ids()
        left: dict[str, list[str]] = {}
        for how, path in ended.items():
            key = storage_key(oss_env, path)
            mp = sql(oss_env, "SELECT multipart_id FROM upload WHERE storage_key = :k", k=key)[0][0]
            tails = [k for k in keys if k.startswith(f"{PREFIX}/{key}.tail")]
            if tails or mp in open_ids:
                left[how] = tails + (["multipart upload " + mp] if mp in open_ids else [])
        assert left == {}, f"left behind after a janitor pass: {left}"
    finally:
        srv.stop()


# ---- 4. the guarantees of part mode


def tus_upload(srv: ServerProcess, tkt: str, data: bytes, name: str) -> str:
    """A whole tus upload; returns its vid."""
    path, created = create(srv.port, tkt, len(data), **meta(name))
    vid = created.headers["vasset-vid"]
    assert_completed(send_all(srv.port, path, tkt, data, 0, [150_001]), data, vid)
    return vid


def test_tus_md5_equals_part_mode_md5_of_the_same_bytes(server, api, app_creds, test_env):
    data = os.urandom(500 * KIB + 9)
    parted = api.upload("parts.mp4", data, 100 * KIB)
    vid = tus_upload(server, ticket(api), data, "tus.mp4")
    assert parted["md5"] == md5(data) and vid != str(parted["vid"])
    for v in (vid, str(parted["vid"])):
        assert api.call("GET", "/video/status", {"vid": v}).json()["status"] == "uploaded"
        check_video(server, app_creds, test_env, v, data)


def test_instant_upload_finds_a_tus_uploaded_video(server, api):
    data = os.urandom(333 * KIB + 1)
    vid = tus_upload(server, ticket(api), data, "first.mp4")
    r = api.init("again.mp4", data, 100 * KIB)
    assert r.status_code == 200, r.text
    again = r.json()
    assert again.get("instant") is True, again
    assert again["md5"] == md5(data) and again["size"] == len(data)
    # a video of its own that shares the tus upload's verified bytes
    assert str(again["vid"]) != vid


def test_janitor_expires_an_idle_tus_upload(test_env, app_creds, tmp_path):
    srv = own_server(test_env, tmp_path, "ttl", VASSET_UPLOAD_TTL="2")
    try:
        tkt = ticket(api_of(srv, app_creds))
        data = os.urandom(300 * KIB)
        path, created = create(srv.port, tkt, len(data), **meta("idle.mp4"))
        vid = created.headers["vasset-vid"]
        assert patch(srv.port, path, tkt, 0, data[:100_000]).status == 204
        time.sleep(3.5)
        assert run_janitor(test_env)["expired_uploads"] >= 1
        assert_gone(srv.port, path, tkt)
        status = api_of(srv, app_creds).call("GET", "/video/status", {"vid": vid}).json()
        assert status["status"] == "upload_failed", status
    finally:
        srv.stop()


def test_deleting_the_video_of_an_unfinished_tus_upload_ends_it(server, api):
    tkt = ticket(api)
    data = os.urandom(200 * KIB)
    path, created = create(server.port, tkt, len(data), **meta("doomed.mp4"))
    assert patch(server.port, path, tkt, 0, data[:70_001]).status == 204
    r = api.call("POST", "/video/delete", {"vid": created.headers["vasset-vid"]})
    assert r.status_code == 200 and r.json()["deleted"] is True, r.text
    assert_gone(server.port, path, tkt)
    # not even the bytes that would complete it are taken
    late = patch(server.port, path, tkt, 70_001, data[70_001:])
    assert late.status in (404, 410), late


# ---- 5. one huge PATCH, and 1-byte PATCHes


def test_one_40_mib_sendfile_patch_between_1_byte_patches(
    server, api, app_creds, test_env, tmp_path
):
    big = 40 * MIB
    data = os.urandom(big + 2)
    fname = tmp_path / "big.bin"
    fname.write_bytes(data)
    tkt = ticket(api)
    path, created = create(server.port, tkt, len(data), **meta("big.mp4"))
    one = patch(server.port, path, tkt, 0, data[:1])
    assert one.status == 204 and one.headers["upload-offset"] == "1", one
    whole = patch_file(server.port, path, tkt, 1, fname, 1, big)
    assert whole.status == 204 and int(whole.headers["upload-offset"]) == big + 1, whole
    assert offset_of(server.port, path, tkt) == big + 1
    final = patch(server.port, path, tkt, big + 1, data[-1:])
    assert_completed(final, data, created.headers["vasset-vid"])
    check_video(server, app_creds, test_env, created.headers["vasset-vid"], data)


def test_a_1_byte_upload_completes(server, api):
    tkt = ticket(api)
    path, created = create(server.port, tkt, 1, **meta("one.mp4"))
    assert_completed(patch(server.port, path, tkt, 0, b"\0"), b"\0", created.headers["vasset-vid"])
