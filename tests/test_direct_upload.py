"""Direct uploads: presigned part URLs and PostObject, bytes straight to OSS, never to the API."""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx

from tests.support.api import Api, b64name
from tests.support.db import sql
from tests.test_oss_uploads import (
    PREFIX,
    PSIZE,
    URL_TTL,
    _oss_healthy,
    cut,
    err,
    metric,
    oapi,
    oss,
    oss_creds,
    oss_env,
    oss_other_creds,
    oss_service,
    other_oapi,
    upload_row,
)

__all__ = [  # fixtures, imported for pytest
    "_oss_healthy",
    "oapi",
    "oss",
    "oss_creds",
    "oss_env",
    "oss_other_creds",
    "oss_service",
    "other_oapi",
]

RECEIVED = "vasset_upload_bytes_received_total"


def direct_init(api: Api, data: bytes, psize: int = PSIZE, with_hash: bool = True, **extra):
    r = api.init("direct.mp4", data, psize, with_hash=with_hash, direct=1, **extra)
    assert r.status_code == 200, r.text
    return r.json()


def put_url(url: str, body: bytes) -> httpx.Response:
    """PUT a part to its presigned URL, as a browser would (no Content-Type)."""
    return httpx.put(url, content=body, timeout=30)


def complete(api: Api, upid: str) -> httpx.Response:
    return api.call("POST", "/video/upload/complete", {"upid": upid})


def post_object(creds: dict, key: str, body: bytes, ctype: str = "video/mp4") -> httpx.Response:
    """A browser's PostObject with the credentials' policy (the file field goes last)."""
    fields = {
        "key": key,
        "OSSAccessKeyId": creds["accessKeyId"],
        "policy": creds["policy"],
        "Signature": creds["signature"],
        "success_action_status": "201",
        "Content-Type": ctype,
    }
    return httpx.post(creds["host"], data=fields, files={"file": ("a.mp4", body, ctype)})


def credentials(api: Api) -> dict:
    r = api.call("GET", "/api/oss/credentials")
    assert r.status_code == 200, r.text
    return r.json()


# ---- presigned multipart


def test_direct_init_answer(oapi, oss_env):
    data = os.urandom(2 * PSIZE + 9)
    init = direct_init(oapi, data)
    assert init["direct"] is True and init["status"] == "uploading"
    assert init["part_count"] == 3 and init["size"] == len(data)
    assert [u["pseq"] for u in init["part_urls"]] == [1, 2, 3]
    assert [u["size"] for u in init["part_urls"]] == [PSIZE, PSIZE, 9]
    now = time.time()
    for u in init["part_urls"]:
        assert now < u["expires_at"] <= now + URL_TTL + 1
        assert "Signature=" in u["url"] and "partNumber=" in u["url"]
    key, _, direct = upload_row(oss_env, init["upload_id"])
    assert direct == 1 and f"/{key}?" in init["part_urls"][0]["url"]


def test_direct_upload_sends_no_bytes_to_the_api(oapi, oss, oss_env, oss_service):
    data = os.urandom(3 * PSIZE + 1000)
    md5 = hashlib.md5(data).hexdigest()
    received = metric(oss_service.url, RECEIVED)
    verified = metric(oss_service.url, "vasset_direct_verify_bytes_read_total")
    init = direct_init(oapi, data)
    key, multipart_id, _ = upload_row(oss_env, init["upload_id"])
    for u, body in zip(init["part_urls"], cut(data), strict=True):
        r = put_url(u["url"], body)
        assert r.status_code == 200, r.text
        assert r.headers["etag"].strip('"').lower() == hashlib.md5(body).hexdigest()
    assert key not in oss.object_keys()
    before = len(oss.requests)
    r = complete(oapi, init["upload_id"])
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "uploaded" and done["md5"] == md5 and done["vid"] == init["vid"]
    ops = [op for _, op in oss.requests[before:]]
    assert ops.index("ListParts") < ops.index("CompleteMultipartUpload") < ops.index("GetObject")
    assert oss.get_bytes(key) == data and multipart_id not in oss.upload_ids()
    # the API received none of the bytes, and read them back once to verify the MD5
    assert metric(oss_service.url, RECEIVED) == received
    assert metric(oss_service.url, "vasset_direct_verify_bytes_read_total") - verified == len(data)
    parts = sql(
        oss_env,
        "SELECT p.pseq, p.size, p.md5 FROM upload_part p JOIN upload u ON u.id = p.upload_pk"
        " WHERE u.upload_id = :u ORDER BY p.pseq",
        u=init["upload_id"],
    )
    assert parts == [(i + 1, len(b), hashlib.md5(b).hexdigest()) for i, b in enumerate(cut(data))]
    info = oapi.call("GET", "/video/mediainfo", {"vid": done["vid"]}).json()
    assert info["md5"] == md5 and info["file_size"] == len(data)
    # server-verified: the same bytes now upload instantly, and completing again is harmless
    again = direct_init(oapi, data)
    assert again["instant"] is True and again["status"] == "uploaded"
    assert complete(oapi, init["upload_id"]).json()["status"] == "uploaded"


def test_direct_complete_checks_parts_through_list_parts(oapi, oss):
    data = os.urandom(3 * PSIZE + 7)
    init = direct_init(oapi, data, with_hash=False)
    upid = init["upload_id"]
    parts = cut(data)
    urls = {u["pseq"]: u["url"] for u in init["part_urls"]}
    assert put_url(urls[2], parts[1]).status_code == 200
    body = err(complete(oapi, upid), 409, "InvalidState")
    assert body["missing"] == [1, 3, 4]
    # a part of the wrong size is named and can be sent again
    assert put_url(urls[1], parts[0][:-1]).status_code == 200
    assert put_url(urls[3], parts[2]).status_code == 200
    assert put_url(urls[4], parts[3]).status_code == 200
    body = err(complete(oapi, upid), 400, "InvalidPartSize")
    assert body["parts"] == [1]
    # direct/urls without pseqs: exactly the parts OSS does not hold correctly
    fresh = oapi.call("GET", "/video/upload/direct/urls", {"upid": upid}).json()
    assert fresh["missing"] == [1] and [u["pseq"] for u in fresh["part_urls"]] == [1]
    assert put_url(fresh["part_urls"][0]["url"], parts[0]).status_code == 200
    done = complete(oapi, upid).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()


def test_direct_lying_hash_is_422_and_leaves_no_object(oapi, oss, oss_env):
    data = os.urandom(PSIZE + 3)
    lie = hashlib.md5(b"not these bytes").hexdigest()
    init = direct_init(oapi, data, with_hash=False, hash=lie)
    key, multipart_id, _ = upload_row(oss_env, init["upload_id"])
    for u, body in zip(init["part_urls"], cut(data), strict=True):
        assert put_url(u["url"], body).status_code == 200
    body = err(complete(oapi, init["upload_id"]), 422, "HashMismatch")
    assert body["md5"] == hashlib.md5(data).hexdigest()
    assert key not in oss.object_keys() and multipart_id not in oss.upload_ids()
    assert oapi.call("GET", "/video/status", {"vid": init["vid"]}).json()["status"] == (
        "upload_failed"
    )
    err(complete(oapi, init["upload_id"]), 409, "UploadAborted")
    r = oapi.call(
        "POST",
        "/video/upload/init",
        {"fn": b64name("x"), "fsize": len(data), "psize": PSIZE, "hash": body["md5"]},
    )
    assert "instant" not in r.json()


def test_resume_of_a_direct_upload_reflects_oss(oapi):
    data = os.urandom(3 * PSIZE)
    init = direct_init(oapi, data)
    parts = cut(data)
    for u in init["part_urls"]:
        if u["pseq"] != 2:
            assert put_url(u["url"], parts[u["pseq"] - 1]).status_code == 200
    # the browser holds only the upload token; resume asks OSS what it has
    resume = httpx.get(
        oapi.base_url + "/video/upload/resume",
        params={"upid": init["upload_id"], "token": init["upload_token"]},
    ).json()
    assert resume["missing"] == [2] and resume["offset"] == PSIZE
    assert put_url(init["part_urls"][1]["url"], parts[1]).status_code == 200
    done = complete(oapi, init["upload_id"]).json()
    assert done["status"] == "uploaded" and done["md5"] == hashlib.md5(data).hexdigest()


def test_expired_part_url_is_refused_and_refreshed_url_works(oapi, oss):
    data = os.urandom(PSIZE)
    init = direct_init(oapi, data)
    old = init["part_urls"][0]
    time.sleep(2.05)  # the refreshed URL expires at least two seconds later
    r = oapi.call("GET", "/video/upload/direct/urls", {"upid": init["upload_id"], "pseqs": "1"})
    assert r.status_code == 200, r.text
    new = r.json()["part_urls"][0]
    assert new["pseq"] == 1 and new["expires_at"] >= old["expires_at"] + 2
    # the OSS clock moves just past the first URL's expiry (the second one still holds)
    oss.clock_offset = old["expires_at"] + 0.5 - time.time()
    r = put_url(old["url"], data)
    assert r.status_code == 403 and b"Request has expired" in r.content
    assert put_url(new["url"], data).status_code == 200
    oss.clock_offset = URL_TTL + 5  # later still: every URL handed out so far is dead
    assert put_url(new["url"], data).status_code == 403
    oss.clock_offset = 0
    assert complete(oapi, init["upload_id"]).json()["status"] == "uploaded"


def test_direct_endpoint_errors(oapi, other_oapi, api):
    data = os.urandom(PSIZE + 1)
    init = direct_init(oapi, data)
    upid = init["upload_id"]
    urls = "/video/upload/direct/urls"
    for bad in ("0", "3", "1,x"):
        err(oapi.call("GET", urls, {"upid": upid, "pseqs": bad}), 400, "InvalidParameter")
    err(oapi.call("GET", urls, {}), 400, "MissingParameter")
    err(oapi.call("GET", urls, {"upid": upid}, signature="0" * 64), 401, "SignatureDoesNotMatch")
    # another app's upload does not exist for it
    err(other_oapi.call("GET", urls, {"upid": upid}), 404, "UploadNotFound")
    err(complete(other_oapi, upid), 404, "UploadNotFound")
    err(complete(oapi, "nope"), 404, "UploadNotFound")
    # the upload token is not enough: these calls are signed
    r = httpx.post(
        oapi.base_url + "/video/upload/complete",
        params={"upid": upid, "token": init["upload_token"]},
    )
    err(r, 400, "MissingParameter")
    # a proxied upload is completed by its last part, not by complete
    proxied = oapi.init("p.mp4", data, PSIZE).json()
    err(complete(oapi, proxied["upload_id"]), 400, "InvalidParameter")
    err(oapi.call("GET", urls, {"upid": proxied["upload_id"]}), 400, "InvalidParameter")
    # on local storage there are no direct uploads
    r = api.init("l.mp4", data, PSIZE, direct=1)
    err(r, 400, "InvalidParameter")
    err(api.call("GET", "/api/oss/credentials"), 400, "InvalidParameter")


# ---- PostObject


def test_post_object_then_register(oapi, oss, oss_env, oss_service):
    data = os.urandom(300 * 1024)
    md5 = hashlib.md5(data).hexdigest()
    received = metric(oss_service.url, RECEIVED)
    creds = credentials(oapi)
    assert set(creds) >= {"accessKeyId", "policy", "signature", "dir", "host", "expire"}
    assert creds["dir"].startswith(f"{PREFIX}/direct/") and creds["dir"].endswith("/")
    assert creds["key"] == creds["dir"] + "source"
    assert time.time() < creds["expire"] <= time.time() + URL_TTL + 1
    r = post_object(creds, creds["key"], data)
    assert r.status_code == 201, r.text
    assert creds["key"] in oss.object_keys()
    r = oapi.call(
        "POST", "/video/upload/register", {"key": creds["key"], "fn": b64name("我的.mp4")}
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "uploaded" and done["md5"] == md5 and done["size"] == len(data)
    # the video points at a copy the browser cannot overwrite; the posted object is gone
    (source,) = sql(oss_env, "SELECT storage_uri FROM video WHERE id = :v", v=done["vid"])[0]
    assert source.startswith("sources/") and oss.get_bytes(f"{PREFIX}/{source}") == data
    assert creds["key"] not in oss.object_keys()
    info = oapi.call("GET", "/video/mediainfo", {"vid": done["vid"]}).json()
    assert info["source_name"] == "我的.mp4" and info["md5"] == md5
    rows = sql(
        oss_env,
        "SELECT direct, status FROM upload WHERE video_id = :v",
        v=done["vid"],
    )
    assert rows == [(1, "uploaded")]
    # registering again answers the same video; the API never saw the bytes
    again = oapi.call("POST", "/video/upload/register", {"key": creds["key"]}).json()
    assert again["vid"] == done["vid"]
    assert metric(oss_service.url, RECEIVED) == received
    # server-verified, so it is in the instant-upload index
    instant = oapi.init("same.mp4", data, PSIZE).json()
    assert instant["instant"] is True


def test_register_with_several_templates_queues_each_output(oapi, oss, oss_env):
    for name, definition in (("reg-low", "360p"), ("reg-high", "480p")):
        r = oapi.call("POST", "/video/templates", {"name": name, "definitions": definition})
        assert r.status_code == 200, r.text
    creds = credentials(oapi)
    assert post_object(creds, creds["key"], os.urandom(200 * 1024)).status_code == 201
    register = {"key": creds["key"], "auto": 1, "template": "reg-low,reg-high"}
    # an unknown name among them refuses the call before anything is registered
    bad = oapi.call("POST", "/video/upload/register", {**register, "template": "reg-low,nope"})
    err(bad, 400, "UnknownTemplate")
    done = oapi.call("POST", "/video/upload/register", register).json()
    outputs = done["outputs"]
    assert [o["template"] for o in outputs] == ["reg-low", "reg-high"]
    assert outputs[0]["vid"] == done["vid"] and outputs[1]["vid"] != done["vid"]
    for output, definition in zip(outputs, ("360p", "480p"), strict=True):
        (params,) = sql(
            oss_env, "SELECT params FROM transcode_job WHERE video_id = :v", v=output["vid"]
        )[0]
        assert json.loads(params)["definitions"] == definition
    # the second output shares the registered, verified bytes
    rows = sql(
        oss_env,
        "SELECT storage_uri, hash FROM video WHERE id IN :vs",
        vs=(outputs[0]["vid"], outputs[1]["vid"]),
    )
    assert len(rows) == 2 and rows[0] == rows[1]


def test_post_object_policy_violations_are_refused_by_oss(oapi, oss):
    creds = credentials(oapi)
    small = os.urandom(1000)
    # too big (this service allows 2 MiB)
    r = post_object(creds, creds["key"], os.urandom((2 << 20) + 1))
    assert r.status_code == 400 and b"EntityTooLarge" in r.content
    # a key outside the credentials' dir, even of the same app
    other_dir = creds["dir"].rsplit("/", 2)[0] + "/0000000000000000/source"
    r = post_object(creds, other_dir, small)
    assert r.status_code == 403 and b"AccessDenied" in r.content
    # not a video
    r = post_object(creds, creds["key"], small, ctype="image/png")
    assert r.status_code == 403 and b"Content-Type" in r.content
    # a tampered policy
    forged = dict(creds, policy=creds["policy"][:-4] + "AAA=")
    assert post_object(forged, creds["key"], small).status_code in (400, 403)
    # an expired policy
    oss.clock_offset = URL_TTL + 5
    r = post_object(creds, creds["key"], small)
    assert r.status_code == 403 and b"Policy expired" in r.content
    oss.clock_offset = 0
    assert creds["key"] not in oss.object_keys()
    assert post_object(creds, creds["key"], small).status_code == 201


def test_register_refuses_other_apps_keys_and_bad_keys(oapi, other_oapi, oss):
    creds = credentials(oapi)
    data = os.urandom(2000)
    assert post_object(creds, creds["key"], data).status_code == 201
    reg = "/video/upload/register"
    err(other_oapi.call("POST", reg, {"key": creds["key"]}), 404, "ObjectNotFound")
    err(oapi.call("POST", reg, {"key": creds["dir"] + "missing"}), 404, "ObjectNotFound")
    err(oapi.call("POST", reg, {"key": creds["key"][len(PREFIX) + 1 :]}), 404, "ObjectNotFound")
    err(oapi.call("POST", reg, {"key": f"{PREFIX}/sources/1/1/x/source"}), 404, "ObjectNotFound")
    err(oapi.call("POST", reg, {"key": creds["dir"] + "a/b"}), 400, "InvalidParameter")
    for bad in ("../x", "..", "a b", ""):
        err(oapi.call("POST", reg, {"key": creds["dir"] + bad}), 400, "InvalidParameter")
    err(oapi.call("POST", reg, {}), 400, "MissingParameter")
    # a lying hash: 422, and neither the posted object nor its copy stays
    lie = hashlib.md5(b"lie").hexdigest()
    body = err(oapi.call("POST", reg, {"key": creds["key"], "hash": lie}), 422, "HashMismatch")
    assert body["md5"] == hashlib.md5(data).hexdigest()
    assert not [k for k in oss.object_keys() if k.startswith(creds["dir"])]
    assert oapi.call("GET", "/video/status", {"vid": body["vid"]}).json()["status"] == (
        "upload_failed"
    )
