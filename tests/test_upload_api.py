"""Upload and video calls through a real server socket: every endpoint and error code."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api, b64name
from tests.support.db import sql

KIB = 1024
PSIZE = 100 * KIB


def blob(n: int) -> bytes:
    return os.urandom(n)


def err(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def start(api: Api, data: bytes, psize: int = PSIZE, **extra) -> dict:
    r = api.init("clip.mp4", data, psize, **extra)
    assert r.status_code == 200, r.text
    return r.json()


def storage_root(env) -> Path:
    return Path(env["VASSET_STORAGE_URL"][len("file://") :])


# ---- limits, init, instant upload


def test_limits(api):
    r = api.call("GET", "/video/upload/limits")
    assert r.status_code == 200
    lim = r.json()
    assert lim["max_part_count"] == 10_000
    assert lim["min_part_size"] == 100 * KIB
    assert lim["max_file_size"] > 0


def test_init_answer_has_contract_fields(api):
    data = blob(250 * KIB)
    init = start(api, data)
    assert init["status"] == "uploading"
    assert init["size"] == len(data)
    assert init["md5"] == hashlib.md5(data).hexdigest()
    assert init["part_size"] == PSIZE and init["part_count"] == 3
    assert init["expires_at"] > time.time() and init["upload_token"]


def test_full_upload_then_instant_upload_same_app_only(api, other_api, test_env):
    data = blob(350 * KIB)
    done = api.upload("a.mp4", data, PSIZE)
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    again = start(api, data)
    assert again["instant"] is True and again["status"] == "uploaded"
    assert again["vid"] != done["vid"] and again["md5"] == done["md5"]
    rows = sql(test_env, "SELECT unique_id, storage_uri FROM video WHERE id = :v", v=again["vid"])
    assert rows[0][0] == done["vid"]
    # another app with the same bytes gets no instant upload
    other = start(other_api, data)
    assert "instant" not in other and other["status"] == "uploading"


def test_lying_whole_file_hash_fails_and_never_enters_instant_index(api):
    data = blob(220 * KIB)
    lie = hashlib.md5(b"something else").hexdigest()
    init = api.call(
        "POST",
        "/video/upload/init",
        {"fn": b64name("x.mp4"), "fsize": len(data), "psize": PSIZE, "hash": lie},
    ).json()
    for i in range(init["part_count"]):
        r = api.put_part(init["upload_id"], i + 1, data[i * PSIZE : (i + 1) * PSIZE])
    body = err(r, 422, "HashMismatch")
    status = api.call("GET", "/video/status", {"vid": init["vid"]}).json()
    assert status["status"] == "upload_failed"
    # the lie is not instant-uploadable, and neither is the true hash of unverified bytes
    for h in (lie, hashlib.md5(data).hexdigest()):
        r = api.call(
            "POST",
            "/video/upload/init",
            {"fn": b64name("y.mp4"), "fsize": len(data), "psize": PSIZE, "hash": h},
        )
        assert "instant" not in r.json()
    assert body["vid"] == init["vid"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"fsize": 1000, "psize": PSIZE}, "MissingParameter"),
        ({"fn": b64name("a"), "psize": PSIZE}, "MissingParameter"),
        ({"fn": b64name("a"), "fsize": 1000}, "MissingParameter"),
        ({"fn": b64name("a"), "fsize": "abc", "psize": PSIZE}, "InvalidParameter"),
        ({"fn": b64name("a"), "fsize": 1000, "psize": "1e3x"}, "InvalidParameter"),
        ({"fn": "***not-base64***", "fsize": 1000, "psize": PSIZE}, "InvalidParameter"),
        (
            {"fn": base64.b64encode(b"\xff\xfe\xfd").decode(), "fsize": 1000, "psize": PSIZE},
            "InvalidParameter",
        ),
        ({"fn": b64name("a"), "fsize": 0, "psize": PSIZE}, "InvalidParameter"),
        ({"fn": b64name("a"), "fsize": -5, "psize": PSIZE}, "InvalidParameter"),
        ({"fn": b64name("a"), "fsize": 1000, "psize": PSIZE, "hash": "xyz"}, "InvalidParameter"),
        ({"fn": b64name("a"), "fsize": 1000, "psize": PSIZE, "auto": 7}, "InvalidParameter"),
    ],
)
def test_init_bad_input(api, params, code):
    err(api.call("POST", "/video/upload/init", params), 400, code)


def test_init_size_limits(api):
    lim = api.call("GET", "/video/upload/limits").json()
    r = api.call(
        "POST",
        "/video/upload/init",
        {"fn": b64name("a"), "fsize": lim["max_file_size"] + 1, "psize": 1 << 30},
    )
    err(r, 413, "EntityTooLarge")
    # below the storage minimum
    body = err(
        api.call(
            "POST", "/video/upload/init", {"fn": b64name("a"), "fsize": 10 << 20, "psize": 1024}
        ),
        400,
        "InvalidPartSize",
    )
    assert str(100 * KIB) in body["message"]
    # more than 10,000 parts: the message names the smallest acceptable psize
    fsize = 10_000 * PSIZE * 3
    body = err(
        api.call(
            "POST", "/video/upload/init", {"fn": b64name("a"), "fsize": fsize, "psize": PSIZE}
        ),
        400,
        "InvalidPartSize",
    )
    assert str(3 * PSIZE) in body["message"] and body["min_part_size"] == 3 * PSIZE
    # a single small part is fine even below the minimum part size
    assert (
        api.call(
            "POST", "/video/upload/init", {"fn": b64name("a"), "fsize": 10, "psize": 1024}
        ).status_code
        == 200
    )


def test_file_names_are_sanitized(api):
    for raw, expect in [
        ("../../etc/passwd", "passwd"),
        ("evil\x00name.mp4", "evilname.mp4"),
        ("d/" + "x" * 10_000 + ".mp4", None),
    ]:
        data = blob(10)
        r = api.call(
            "POST",
            "/video/upload/init",
            {"fn": b64name(raw), "fsize": len(data), "psize": PSIZE},
        )
        assert r.status_code == 200, r.text
        info = api.call("GET", "/video/mediainfo", {"vid": r.json()["vid"]}).json()
        if expect:
            assert info["source_name"] == expect
        else:
            assert len(info["source_name"]) <= 200 and "/" not in info["source_name"]


# ---- parts


def test_part_errors(api):
    data = blob(250 * KIB)
    init = start(api, data)
    upid = init["upload_id"]
    err(api.put_part(upid, 0, data[:PSIZE]), 400, "InvalidParameter")
    err(api.put_part(upid, 4, data[:PSIZE]), 400, "InvalidParameter")
    err(api.put_part(upid, 1, data[: PSIZE - 1]), 400, "InvalidPartSize")
    err(api.put_part(upid, 3, data[2 * PSIZE :] + b"x"), 400, "InvalidPartSize")
    err(api.put_part(upid, 1, data[:PSIZE], hash="0" * 32), 400, "InvalidDigest")
    err(api.put_part(upid, 1, data[:PSIZE], hash="nothex"), 400, "InvalidParameter")
    resume = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [1, 2, 3] and resume["offset"] == 0


def test_idempotent_resend_and_any_order_and_resume(api):
    data = blob(450 * KIB)
    init = start(api, data)
    upid = init["upload_id"]
    parts = {i + 1: data[i * PSIZE : (i + 1) * PSIZE] for i in range(init["part_count"])}
    for pseq, received in ((3, 1), (1, 2), (1, 2), (3, 2)):
        r = api.put_part(upid, pseq, parts[pseq])
        assert r.status_code == 200 and r.json()["received"] == received
    resume = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [2, 4, 5]
    assert resume["offset"] == PSIZE and resume["status"] == "uploading"
    for pseq in (5, 2):
        assert api.put_part(upid, pseq, parts[pseq], with_hash=False).status_code == 200
    assert api.call("GET", "/video/upload/resume", {"upid": upid}).json()["offset"] == 3 * PSIZE
    done = api.put_part(upid, 4, parts[4]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()
    # The last part again (its answer lost): the same completion answer; other bytes: 409.
    again = api.put_part(upid, 4, parts[4])
    assert again.status_code == 200 and again.json() == done
    err(api.put_part(upid, 4, os.urandom(len(parts[4]))), 409, "UploadCompleted")
    after = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert after == {
        "upload_id": upid,
        "status": "uploaded",
        "vid": init["vid"],
        "md5": hashlib.md5(data).hexdigest(),
        "size": len(data),
    }


def test_same_part_twice_at_once(api):
    data = blob(300 * KIB)
    init = start(api, data)
    part = data[:PSIZE]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: api.put_part(init["upload_id"], 1, part), range(4)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    resume = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert resume["missing"] == [2, 3]


def test_all_parts_in_parallel_random_order(api, test_env):
    psize = PSIZE
    data = blob(psize * 23 + 777)
    init = start(api, data, psize)
    order = list(range(1, init["part_count"] + 1))
    random.shuffle(order)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda p: api.put_part(init["upload_id"], p, data[(p - 1) * psize : p * psize]),
                order,
            )
        )
    assert all(r.status_code == 200 for r in results), [
        r.text for r in results if r.status_code != 200
    ]
    done = [r.json() for r in results if r.json().get("status") == "uploaded"]
    assert len(done) >= 1 and {d["vid"] for d in done} == {init["vid"]}
    assert done[0]["md5"] == hashlib.md5(data).hexdigest()
    rows = sql(
        test_env, "SELECT COUNT(*) FROM video WHERE id = :v AND status = 'uploaded'", v=init["vid"]
    )
    assert rows[0][0] == 1
    key = sql(test_env, "SELECT storage_uri FROM video WHERE id = :v", v=init["vid"])[0][0]
    stored = (storage_root(test_env) / "objects" / key).read_bytes()
    assert hashlib.md5(stored).hexdigest() == hashlib.md5(data).hexdigest()


def test_short_body_then_disconnect_stores_nothing(api, server):
    data = blob(250 * KIB)
    init = start(api, data)
    url = httpx.URL(api.url("PUT", "/video/upload/upload", {"upid": init["upload_id"], "pseq": 1}))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = f"PUT {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Length: {PSIZE}\r\n\r\n"
        sock.sendall(head.encode() + data[: PSIZE // 2])
        time.sleep(0.3)
    time.sleep(0.5)
    resume = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert resume["missing"] == [1, 2, 3]
    # the part can be sent again and the upload completes correctly
    done = api.upload  # noqa: F841 - readability
    for i in range(3):
        r = api.put_part(init["upload_id"], i + 1, data[i * PSIZE : (i + 1) * PSIZE])
    assert r.json()["md5"] == hashlib.md5(data).hexdigest()


# ---- whole-file mode


def test_whole_file_mode_with_content_range(api):
    data = blob(5 * PSIZE + 1234)
    init = start(api, data)
    upid = init["upload_id"]

    def put_range(start_byte: int, end: int):
        return api.call(
            "PUT",
            "/video/upload/upload",
            {"upid": upid},
            content=data[start_byte : end + 1],
            headers={"Content-Range": f"bytes {start_byte}-{end}/{len(data)}"},
        )

    r = put_range(0, 2 * PSIZE + 500 - 1)  # two whole parts and a fragment
    assert r.status_code == 200 and r.json()["offset"] == 2 * PSIZE
    body = err(put_range(0, PSIZE - 1), 409, "OffsetMismatch")
    assert body["offset"] == 2 * PSIZE
    err(
        api.call(
            "PUT",
            "/video/upload/upload",
            {"upid": upid},
            content=b"x",
            headers={"Content-Range": "bytes=0-1"},
        ),
        400,
        "InvalidContentRange",
    )
    err(
        api.call("PUT", "/video/upload/upload", {"upid": upid}, content=b"x"),
        400,
        "InvalidContentRange",
    )
    err(put_range(2 * PSIZE, len(data)), 400, "InvalidContentRange")
    done = put_range(2 * PSIZE, len(data) - 1).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()


# ---- auth


def test_signature_failures(api, app_creds):
    err(api.call("GET", "/video/upload/limits", signature="0" * 64), 401, "SignatureDoesNotMatch")
    body = err(
        api.call("GET", "/video/upload/limits", timestamp=int(time.time()) - 1000),
        401,
        "SignatureExpired",
    )
    assert "server time" in body["message"]
    err(
        api.call("GET", "/video/upload/limits", timestamp=int(time.time()) + 1000),
        401,
        "SignatureExpired",
    )
    nonce = "replay-" + os.urandom(8).hex()
    assert api.call("GET", "/video/upload/limits", random=nonce).status_code == 200
    err(api.call("GET", "/video/upload/limits", random=nonce), 401, "SignatureNonceUsed")
    bad = Api(api.base_url, "ak_nobody", "x")
    err(bad.call("GET", "/video/upload/limits"), 401, "InvalidAppKey")
    err(api.call("GET", "/video/upload/limits", random="short"), 400, "InvalidParameter")
    r = httpx.get(api.base_url + "/video/upload/limits")
    err(r, 400, "MissingParameter")


def test_tampered_parameter_is_refused(api):
    url = api.url("GET", "/video/status", {"vid": 1})
    err(httpx.get(url.replace("vid=1", "vid=2")), 401, "SignatureDoesNotMatch")


def test_upload_token_authorizes_only_its_upload(api):
    data = blob(150 * KIB)
    a = start(api, data)
    b = start(api, blob(150 * KIB))
    base = api.base_url + "/video/upload/"
    r = httpx.get(base + "resume", params={"upid": a["upload_id"], "token": a["upload_token"]})
    assert r.status_code == 200 and r.json()["missing"] == [1, 2]
    err(
        httpx.get(base + "resume", params={"upid": b["upload_id"], "token": a["upload_token"]}),
        401,
        "InvalidUploadToken",
    )
    r = httpx.put(
        base + "upload",
        params={"upid": a["upload_id"], "pseq": 1, "token": a["upload_token"]},
        content=data[:PSIZE],
    )
    assert r.status_code == 200
    r = httpx.put(
        base + "upload",
        params={"upid": a["upload_id"], "pseq": 2, "token": a["upload_token"]},
        content=data[PSIZE:],
    )
    assert r.json()["status"] == "uploaded"
    # the token authorizes nothing else
    err(
        httpx.get(
            api.base_url + "/video/status", params={"vid": a["vid"], "token": a["upload_token"]}
        ),
        400,
        "MissingParameter",
    )


def test_other_apps_cannot_see_uploads_or_videos(api, other_api):
    data = blob(150 * KIB)
    init = start(api, data)
    err(
        other_api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}),
        404,
        "UploadNotFound",
    )
    err(other_api.put_part(init["upload_id"], 1, data[:PSIZE]), 404, "UploadNotFound")
    for method, path in [
        ("GET", "/video/status"),
        ("GET", "/video/mediainfo"),
        ("POST", "/video/delete"),
    ]:
        body = err(other_api.call(method, path, {"vid": init["vid"]}), 404, "VideoNotFound")
        assert body["status"] == "not_found"
    err(api.call("GET", "/video/status", {"vid": 999_999_999}), 404, "VideoNotFound")
    err(api.call("GET", "/video/upload/resume", {"upid": "nope"}), 404, "UploadNotFound")
    err(api.call("GET", "/video/status", {"vid": 0}), 400, "InvalidParameter")


def test_expired_upload_is_gone_and_its_parts_removed(api, test_env):
    data = blob(250 * KIB)
    init = start(api, data)
    assert api.put_part(init["upload_id"], 1, data[:PSIZE]).status_code == 200
    mp = sql(test_env, "SELECT multipart_id FROM upload WHERE upload_id = :u", u=init["upload_id"])[
        0
    ][0]
    mp_dir = storage_root(test_env) / "multipart" / mp
    assert mp_dir.exists()
    sql(test_env, "UPDATE upload SET expires_at = 1 WHERE upload_id = :u", u=init["upload_id"])
    err(api.put_part(init["upload_id"], 2, data[PSIZE : 2 * PSIZE]), 404, "UploadNotFound")
    err(api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}), 404, "UploadNotFound")
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vasset", "janitor"],
        env={**os.environ, **test_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"expired_uploads"' in out.stdout
    assert not mp_dir.exists()
    assert (
        api.call("GET", "/video/status", {"vid": init["vid"]}).json()["status"] == "upload_failed"
    )


# ---- videos


def test_status_mediainfo_delete_and_shared_bytes(api, test_env):
    data = blob(120 * KIB)
    first = api.upload("orig.mp4", data, PSIZE)
    status = api.call("GET", "/video/status", {"vid": first["vid"]}).json()
    assert status == {
        "vid": first["vid"],
        "status": "uploaded",
        "playable": False,
        "progress": 0,
        "error": None,
        "delete_at": None,
        "ladder": None,
    }
    info = api.call("GET", "/video/mediainfo", {"vid": first["vid"]}).json()
    assert info["source_name"] == "orig.mp4" and info["file_size"] == len(data)
    assert info["md5"] == hashlib.md5(data).hexdigest() and info["renditions"] == []
    second = start(api, data)
    assert second["instant"]
    key = sql(test_env, "SELECT storage_uri FROM video WHERE id = :v", v=first["vid"])[0][0]
    path = storage_root(test_env) / "objects" / key
    assert api.call("POST", "/video/delete", {"vid": first["vid"]}).json() == {
        "vid": first["vid"],
        "deleted": True,
    }
    assert path.exists(), "bytes shared with the instant copy must survive"
    err(api.call("GET", "/video/status", {"vid": first["vid"]}), 404, "VideoNotFound")
    assert api.call("GET", "/video/status", {"vid": second["vid"]}).json()["status"] == "uploaded"
    assert api.call("POST", "/video/delete", {"vid": second["vid"]}).status_code == 200
    assert not path.exists()
    err(api.call("POST", "/video/delete", {"vid": second["vid"]}), 404, "VideoNotFound")


def test_delete_during_upload_aborts_it(api):
    data = blob(250 * KIB)
    init = start(api, data)
    assert api.put_part(init["upload_id"], 1, data[:PSIZE]).status_code == 200
    assert api.call("POST", "/video/delete", {"vid": init["vid"]}).status_code == 200
    r = api.put_part(init["upload_id"], 2, data[PSIZE : 2 * PSIZE])
    assert r.status_code == 409 and r.json()["code"] == "UploadAborted"
    resume = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert resume["status"] == "upload_failed" and resume["error"] == "VideoDeleted"


def test_unknown_route_and_method_are_json_errors(api):
    r = httpx.get(api.base_url + "/nope")
    assert r.status_code == 404 and r.json()["code"] == "NotFound" and r.headers["x-request-id"]
    r = httpx.delete(api.base_url + "/video/status")
    assert r.status_code == 405 and r.json()["code"] == "MethodNotAllowed"


def test_token_routes_allow_cross_origin_browsers(api):
    data = blob(150 * KIB)
    init = start(api, data)
    url = api.base_url + "/video/upload/upload"
    pre = httpx.options(
        url,
        headers={
            "Origin": "https://app.example.test",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] in ("*", "https://app.example.test")
    assert "PUT" in pre.headers["access-control-allow-methods"]
    r = httpx.put(
        url,
        params={"upid": init["upload_id"], "pseq": 1, "token": init["upload_token"]},
        content=data[:PSIZE],
        headers={"Origin": "https://app.example.test"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example.test")
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
