"""The OSS test server, driven by oss2 (and raw HTTP where oss2 cannot misbehave on purpose)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path

import oss2
import pytest
import requests
from oss2.models import PartInfo

from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import (
    OSS_ACCESS_KEY_ID as AK,
)
from tests.oss_server.pytest_plugin import (
    OSS_ACCESS_KEY_SECRET as SK,
)
from tests.oss_server.pytest_plugin import (
    OSS_BUCKET as BUCKET,
)
from tests.oss_server.pytest_plugin import (
    oss_bucket,
    oss_server,
)

__all__ = ["oss_bucket", "oss_server"]  # fixtures, imported for pytest

KIB = 1024


def _md5_etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def _error(resp: requests.Response) -> dict[str, str]:
    root = ET.fromstring(resp.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def _v1_auth(method: str, resource: str, date: str, secret: str = SK, extra: str = "") -> str:
    sts = f"{method}\n\n\n{date}\n{extra}{resource}"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest())
    return f"OSS {AK}:{sig.decode()}"


# objects
def test_put_get_roundtrip_keeps_meta_and_md5_etag(oss_bucket: oss2.Bucket) -> None:
    data = b"hello world"
    put = oss_bucket.put_object(
        "dir/a b+c.txt", data, headers={"x-oss-meta-owner": "me", "Content-Type": "text/x-test"}
    )
    assert put.etag == _md5_etag(data)
    assert put.crc is not None
    got = oss_bucket.get_object("dir/a b+c.txt")
    assert got.read() == data
    assert got.headers["x-oss-meta-owner"] == "me"
    assert got.headers["Content-Type"] == "text/x-test"
    assert got.headers["ETag"] == f'"{_md5_etag(data)}"'
    head = oss_bucket.head_object("dir/a b+c.txt")
    assert head.content_length == len(data)
    assert head.headers["x-oss-meta-owner"] == "me"
    assert head.object_type == "Normal"
    assert oss_bucket.get_object_meta("dir/a b+c.txt").content_length == len(data)


def test_chunked_body_from_iterator(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    chunks = [bytes([i]) * 70_000 for i in range(5)]
    before = oss_server.bytes_received
    put = oss_bucket.put_object("chunked", iter(chunks))
    assert put.etag == _md5_etag(b"".join(chunks))
    assert oss_server.get_bytes("chunked") == b"".join(chunks)
    # the chunk framing is not counted: only body bytes
    assert oss_server.bytes_received - before == 350_000


def test_raw_chunked_with_extensions_and_trailers(oss_server: OssServer) -> None:
    date = formatdate(usegmt=True)
    conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=5)
    conn.putrequest("PUT", f"/{BUCKET}/raw")
    conn.putheader("Date", date)
    conn.putheader("Authorization", _v1_auth("PUT", f"/{BUCKET}/raw", date))
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    assert oss_server.get_bytes("raw") == b"hello world"


def test_content_md5_mismatch_is_invalid_digest(oss_bucket: oss2.Bucket) -> None:
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.InvalidDigest):
        oss_bucket.put_object("k", b"data", headers={"Content-MD5": bad})
    with pytest.raises(oss2.exceptions.InvalidDigest):
        oss_bucket.put_object("k", b"data", headers={"Content-MD5": "not-base64"})
    assert not oss_bucket.object_exists("k")
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    oss_bucket.put_object("k", b"data", headers={"Content-MD5": good})
    assert oss_bucket.get_object("k").read() == b"data"


def test_ranges(oss_bucket: oss2.Bucket) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    oss_bucket.put_object("r", data)

    def get(rng: str, standard: bool = False) -> requests.Response:
        headers = {"Range": rng}
        if standard:
            headers["x-oss-range-behavior"] = "standard"
        return requests.get(oss_bucket.sign_url("GET", "r", 60, headers=headers), headers=headers)

    r = get("bytes=10-19")
    assert (r.status_code, r.content) == (206, data[10:20])
    assert r.headers["Content-Range"] == "bytes 10-19/1024"
    r = get("bytes=1000-")
    assert (r.status_code, r.content) == (206, data[1000:])
    r = get("bytes=-24")
    assert (r.status_code, r.content) == (206, data[-24:])
    # OSS ignores invalid ranges: the whole object with 200
    for rng in ("bytes=500-2000", "bytes=2000-3000", "bytes=20-10", "bytes=-2000", "items=1-2"):
        r = get(rng)
        assert (r.status_code, r.content) == (200, data), rng
    # unless the client asks for standard behaviour
    r = get("bytes=500-2000", standard=True)
    assert (r.status_code, r.content) == (206, data[500:])
    r = get("bytes=2000-3000", standard=True)
    assert r.status_code == 416 and _error(r)["Code"] == "InvalidRange"
    assert get("bytes=1024-", standard=True).status_code == 416
    assert get("bytes=1024-").status_code == 200
    assert get("bytes=0-1,5-6").status_code == 416
    # oss2's own ranged read
    assert oss_bucket.get_object("r", byte_range=(0, 3)).read() == data[:4]


def test_head_error_is_in_x_oss_err_header(oss_bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as info:
        oss_bucket.head_object("missing")
    assert info.value.request_id
    r = requests.head(oss_bucket.sign_url("HEAD", "missing", 60))
    assert r.status_code == 404 and r.content == b""
    err = ET.fromstring(base64.b64decode(r.headers["x-oss-err"]))
    assert err.findtext("Code") == "NoSuchKey"


def test_error_document_shape(oss_bucket: oss2.Bucket) -> None:
    r = requests.get(oss_bucket.sign_url("GET", "missing", 60))
    assert r.status_code == 404
    err = _error(r)
    assert err["Code"] == "NoSuchKey"
    assert err["Message"] and err["HostId"] and err["Key"] == "missing"
    assert err["RequestId"] == r.headers["x-oss-request-id"]
    assert "xmlns" not in r.text
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss_bucket.get_object("missing")
    ok = requests.put(oss_bucket.sign_url("PUT", "x", 60), data=b"1")
    assert ok.status_code == 200 and ok.headers["x-oss-request-id"]


def test_delete_and_copy(oss_bucket: oss2.Bucket) -> None:
    assert oss_bucket.delete_object("never-there").status == 204
    oss_bucket.put_object("src", b"payload", headers={"x-oss-meta-a": "1"})
    oss_bucket.copy_object(BUCKET, "src", "dst")
    oss_bucket.delete_object("src")
    got = oss_bucket.get_object("dst")
    assert got.read() == b"payload" and got.headers["x-oss-meta-a"] == "1"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss_bucket.copy_object(BUCKET, "src", "dst2")


def test_forbid_overwrite(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("once", b"1")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.put_object("once", b"2", headers={"x-oss-forbid-overwrite": "true"})
    assert info.value.code == "FileAlreadyExists"
    assert oss_bucket.get_object("once").read() == b"1"


def test_list_objects_paging_prefix_delimiter(oss_bucket: oss2.Bucket) -> None:
    keys = ["a/1", "a/2", "a/sub/3", "b/1", "b/2", "c", "sp ace/ü%"]
    for k in keys:
        oss_bucket.put_object(k, b"x")
    assert [o.key for o in oss2.ObjectIterator(oss_bucket, max_keys=2)] == keys
    assert [o.key for o in oss2.ObjectIteratorV2(oss_bucket, max_keys=2)] == keys
    first = oss_bucket.list_objects(prefix="a/", max_keys=2)
    assert [o.key for o in first.object_list] == ["a/1", "a/2"]
    assert first.is_truncated and first.next_marker == "a/2"
    rest = oss_bucket.list_objects(prefix="a/", marker=first.next_marker)
    assert [o.key for o in rest.object_list] == ["a/sub/3"] and not rest.is_truncated
    top = oss_bucket.list_objects(delimiter="/")
    assert top.prefix_list == ["a/", "b/", "sp ace/"]
    assert [o.key for o in top.object_list] == ["c"]
    o = rest.object_list[0]
    assert o.size == 1 and o.etag == _md5_etag(b"x") and o.last_modified > 0
    v2 = oss_bucket.list_objects_v2(prefix="b/", max_keys=1)
    assert [o.key for o in v2.object_list] == ["b/1"] and v2.is_truncated
    v2 = oss_bucket.list_objects_v2(prefix="b/", continuation_token=v2.next_continuation_token)
    assert [o.key for o in v2.object_list] == ["b/2"] and not v2.is_truncated
    with pytest.raises(oss2.exceptions.InvalidArgument):
        oss_bucket.list_objects(max_keys=1001)


def test_delete_multiple_objects(oss_bucket: oss2.Bucket) -> None:
    for k in ("d/1", "d/2", "keep"):
        oss_bucket.put_object(k, b"x")
    result = oss_bucket.batch_delete_objects(["d/1", "d/2", "d/missing"])
    assert sorted(result.deleted_keys) == ["d/1", "d/2", "d/missing"]
    assert [o.key for o in oss2.ObjectIterator(oss_bucket)] == ["keep"]


# addressing
def test_virtual_host_addressing(oss_server: OssServer) -> None:
    # A hostname endpoint makes oss2 use bucket.host URLs; the server is reached as a proxy.
    endpoint = f"http://oss-test.internal:{oss_server.port}"
    bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET, proxies={"http": oss_server.endpoint})
    bucket.put_object("vh/key", b"virtual")
    assert bucket.get_object("vh/key").read() == b"virtual"
    assert oss_server.get_bytes("vh/key") == b"virtual"
    # and a plain request with a bucket Host header
    date = formatdate(usegmt=True)
    conn = http.client.HTTPConnection("127.0.0.1", oss_server.port, timeout=5)
    conn.request(
        "GET",
        "/vh/key",
        headers={
            "Host": f"{BUCKET}.localhost",
            "Date": date,
            "Authorization": _v1_auth("GET", f"/{BUCKET}/vh/key", date),
        },
    )
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"virtual")


def test_unknown_bucket(oss_server: OssServer) -> None:
    other = oss2.Bucket(oss2.Auth(AK, SK), oss_server.endpoint, "other-bucket")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.get_object("k")


# authentication
def test_wrong_key_and_secret(oss_server: OssServer) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss2.Bucket(oss2.Auth("nope", SK), oss_server.endpoint, BUCKET).get_object("k")
    assert (info.value.status, info.value.code) == (403, "InvalidAccessKeyId")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        oss2.Bucket(oss2.Auth(AK, "wrong"), oss_server.endpoint, BUCKET).put_object("k", b"1")
    assert oss_server.object_keys() == []


def test_anonymous_is_denied(oss_server: OssServer) -> None:
    r = requests.get(f"{oss_server.endpoint}/{BUCKET}/k")
    assert r.status_code == 403 and _error(r)["Code"] == "AccessDenied"


def test_skewed_date(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    oss_server.clock_offset = 10 * 60  # within 15 minutes: fine
    oss_bucket.put_object("k", b"1")
    oss_server.clock_offset = 16 * 60
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.put_object("k", b"1")
    assert (info.value.status, info.value.code) == (403, "RequestTimeTooSkewed")
    date = formatdate(time.time() - 3600, usegmt=True)
    oss_server.clock_offset = 0
    r = requests.get(
        f"{oss_server.endpoint}/{BUCKET}/k",
        headers={"Date": date, "Authorization": _v1_auth("GET", f"/{BUCKET}/k", date)},
    )
    assert r.status_code == 403 and _error(r)["Code"] == "RequestTimeTooSkewed"


def test_tampered_header_signature(oss_server: OssServer) -> None:
    date = formatdate(usegmt=True)
    auth = _v1_auth("GET", f"/{BUCKET}/other", date)
    r = requests.get(
        f"{oss_server.endpoint}/{BUCKET}/k", headers={"Date": date, "Authorization": auth}
    )
    assert r.status_code == 403
    err = _error(r)
    assert err["Code"] == "SignatureDoesNotMatch"
    assert err["StringToSign"].endswith(f"/{BUCKET}/k")


def test_signed_x_oss_headers_and_subresources(oss_server: OssServer) -> None:
    date = formatdate(usegmt=True)
    extra = "x-oss-meta-a:1\nx-oss-meta-b:2\n"
    auth = _v1_auth("PUT", f"/{BUCKET}/h", date, extra=extra)
    headers = {"Date": date, "Authorization": auth, "X-OSS-Meta-B": "2", "x-oss-meta-a": "1"}
    r = requests.put(f"{oss_server.endpoint}/{BUCKET}/h", data=b"1", headers=headers)
    assert r.status_code == 200, r.text
    headers["x-oss-meta-a"] = "changed"
    r = requests.put(f"{oss_server.endpoint}/{BUCKET}/h", data=b"1", headers=headers)
    assert _error(r)["Code"] == "SignatureDoesNotMatch"


def test_presigned_urls(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    oss_bucket.put_object("p", b"presigned")
    url = oss_bucket.sign_url(
        "GET", "p", 60, params={"response-content-disposition": 'attachment; filename="a.mp4"'}
    )
    r = requests.get(url)
    assert r.status_code == 200 and r.content == b"presigned"
    assert r.headers["Content-Disposition"] == 'attachment; filename="a.mp4"'
    # the response override is signed: changing it breaks the signature
    r = requests.get(url.replace("a.mp4", "b.mp4"))
    assert r.status_code == 403 and _error(r)["Code"] == "SignatureDoesNotMatch"
    sig = url.split("Signature=")[1].split("&")[0]
    r = requests.get(url.replace(sig, ("B" if sig[0] == "A" else "A") + sig[1:]))
    assert _error(r)["Code"] == "SignatureDoesNotMatch"
    oss_server.clock_offset = 120
    r = requests.get(url)
    assert r.status_code == 403
    assert (_error(r)["Code"], _error(r)["Message"]) == ("AccessDenied", "Request has expired.")


def test_presigned_put_signs_content_type_and_md5(oss_bucket: oss2.Bucket) -> None:
    data = b"video bytes"
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    headers = {"Content-Type": "video/mp4", "Content-MD5": md5}
    url = oss_bucket.sign_url("PUT", "up.mp4", 60, headers=headers)
    assert requests.put(url, data=data, headers=headers).status_code == 200
    r = requests.put(url, data=data, headers={**headers, "Content-Type": "text/plain"})
    assert _error(r)["Code"] == "SignatureDoesNotMatch"
    assert oss_bucket.head_object("up.mp4").content_type == "video/mp4"


def test_presigned_upload_part(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    upload_id = oss_bucket.init_multipart_upload("pp").upload_id
    params = {"partNumber": "1", "uploadId": upload_id}
    url = oss_bucket.sign_url("PUT", "pp", 60, params=params)
    r = requests.put(url, data=b"part-one")
    assert r.status_code == 200 and r.headers["ETag"] == f'"{_md5_etag(b"part-one")}"'
    assert oss_server.part_numbers(upload_id) == [1]
    # partNumber is a signed sub-resource
    r = requests.put(url.replace("partNumber=1", "partNumber=2"), data=b"x")
    assert _error(r)["Code"] == "SignatureDoesNotMatch"


def test_sts_tokens(oss_server: OssServer) -> None:
    oss_server.add_credentials("STS.ak", "sts-secret", "the-token")
    good = oss2.Bucket(
        oss2.StsAuth("STS.ak", "sts-secret", "the-token"), oss_server.endpoint, BUCKET
    )
    good.put_object("s", b"sts")
    assert requests.get(good.sign_url("GET", "s", 60)).content == b"sts"
    wrong = oss2.Bucket(oss2.StsAuth("STS.ak", "sts-secret", "other"), oss_server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        wrong.get_object("s")
    assert info.value.code == "InvalidSecurityToken"
    missing = oss2.Bucket(oss2.Auth("STS.ak", "sts-secret"), oss_server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        missing.get_object("s")
    assert info.value.code == "InvalidAccessKeyId"


def test_v4_signatures(oss_server: OssServer) -> None:
    v4 = oss2.Bucket(oss2.AuthV4(AK, SK), oss_server.endpoint, BUCKET, region="cn-hangzhou")
    v4.put_object("v4/a b", b"four", headers={"x-oss-meta-x": "y", "Content-Type": "text/plain"})
    assert v4.get_object("v4/a b").read() == b"four"
    assert [o.key for o in v4.list_objects(prefix="v4/").object_list] == ["v4/a b"]
    upload_id = v4.init_multipart_upload("v4/mp").upload_id
    part = v4.upload_part("v4/mp", upload_id, 1, b"p")
    v4.complete_multipart_upload("v4/mp", upload_id, [PartInfo(1, part.etag)])
    url = v4.sign_url("GET", "v4/a b", 60)
    assert requests.get(url).content == b"four"
    sts = oss2.StsAuth("STS.v4", "s4", "tok4", auth_version="v4")
    oss_server.add_credentials("STS.v4", "s4", "tok4")
    sts_bucket = oss2.Bucket(sts, oss_server.endpoint, BUCKET, region="cn-hangzhou")
    assert sts_bucket.get_object("v4/a b").read() == b"four"
    assert requests.get(sts_bucket.sign_url("GET", "v4/a b", 60)).content == b"four"
    bad = oss2.Bucket(oss2.AuthV4(AK, "nope"), oss_server.endpoint, BUCKET, region="cn-hangzhou")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        bad.get_object("v4/a b")
    oss_server.clock_offset = 120
    r = requests.get(url)
    assert r.status_code == 403 and _error(r)["Message"] == "Request has expired."


# PostObject
def _policy(conditions: list, expires_in: int = 60) -> str:
    exp = (datetime.now(UTC) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return base64.b64encode(
        json.dumps({"expiration": exp, "conditions": conditions}).encode()
    ).decode()


def _post(
    server: OssServer,
    policy: str,
    key: str,
    data: bytes,
    secret: str = SK,
    **extra: str,
) -> requests.Response:
    sig = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest())
    fields = {
        "key": key,
        "OSSAccessKeyId": AK,
        "policy": policy,
        "Signature": sig.decode(),
        **extra,
    }
    files = {"file": ("clip.mp4", data, "video/mp4")}
    return requests.post(f"{server.endpoint}/{BUCKET}/", data=fields, files=files, timeout=5)


def test_post_object(oss_server: OssServer) -> None:
    conds = [
        ["content-length-range", 1, 1000],
        ["starts-with", "$key", "direct/7/"],
        {"bucket": BUCKET},
        ["eq", "$success_action_status", "201"],
    ]
    policy = _policy(conds)
    r = _post(oss_server, policy, "direct/7/${filename}", b"x" * 10, success_action_status="201")
    assert r.status_code == 201, r.text
    root = ET.fromstring(r.content)
    assert root.findtext("Key") == "direct/7/clip.mp4"
    assert root.findtext("ETag") == f'"{_md5_etag(b"x" * 10)}"'
    assert oss_server.get_bytes("direct/7/clip.mp4") == b"x" * 10
    plain = _policy([["content-length-range", 0, 100]])
    r = _post(oss_server, plain, "k", b"abc", **{"x-oss-meta-from": "form"})
    assert r.status_code == 204 and r.headers["ETag"] == f'"{_md5_etag(b"abc")}"'
    r = _post(oss_server, plain, "k200", b"abc", success_action_status="200")
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("conditions", "key", "size", "expires_in", "status", "code"),
    [
        ([["starts-with", "$key", "direct/7/"]], "direct/8/x", 1, 60, 403, "AccessDenied"),
        ([{"bucket": "another"}], "k", 1, 60, 403, "AccessDenied"),
        ([["eq", "$key", "exact"]], "other", 1, 60, 403, "AccessDenied"),
        ([["content-length-range", 1, 10]], "k", 11, 60, 400, "EntityTooLarge"),
        ([["content-length-range", 5, 10]], "k", 4, 60, 400, "EntityTooSmall"),
        ([["content-length-range", 10, 5]], "k", 7, 60, 400, "InvalidPolicyDocument"),
        ([["content-length-range", 1, 10]], "k", 5, -60, 403, "AccessDenied"),
    ],
)
def test_post_object_policy_violations(
    oss_server: OssServer,
    conditions: list,
    key: str,
    size: int,
    expires_in: int,
    status: int,
    code: str,
) -> None:
    r = _post(oss_server, _policy(conditions, expires_in), key, b"z" * size)
    assert (r.status_code, _error(r)["Code"]) == (status, code), r.text
    assert oss_server.object_keys() == []


def test_post_object_bad_signature_and_policy(oss_server: OssServer) -> None:
    policy = _policy([["content-length-range", 0, 10]])
    r = _post(oss_server, policy, "k", b"1", secret="wrong")
    assert (r.status_code, _error(r)["Code"]) == (403, "SignatureDoesNotMatch")
    not_json = base64.b64encode(b"{nope").decode()
    r = _post(oss_server, not_json, "k", b"1")
    assert (r.status_code, _error(r)["Code"]) == (400, "InvalidPolicyDocument")
    no_exp = base64.b64encode(json.dumps({"conditions": []}).encode()).decode()
    assert _error(_post(oss_server, no_exp, "k", b"1"))["Code"] == "InvalidPolicyDocument"
    assert oss_server.object_keys() == []


# multipart uploads
def test_multipart_roundtrip(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    key = "mp/object"
    upload_id = oss_bucket.init_multipart_upload(key).upload_id
    part_data = [bytes([n]) * (100 * KIB) for n in range(1, 4)] + [b"last"]
    etags = {}
    for n in (3, 1, 4, 2):  # any order
        etags[n] = oss_bucket.upload_part(key, upload_id, n, part_data[n - 1]).etag
        assert etags[n] == _md5_etag(part_data[n - 1])
    listed = oss_bucket.list_parts(key, upload_id)
    assert [(p.part_number, p.size, p.etag) for p in listed.parts] == [
        (n, len(part_data[n - 1]), etags[n]) for n in (1, 2, 3, 4)
    ]
    uploads = oss_bucket.list_multipart_uploads().upload_list
    assert [(u.key, u.upload_id) for u in uploads] == [(key, upload_id)]
    assert abs(uploads[0].initiation_date - time.time()) < 60
    result = oss_bucket.complete_multipart_upload(
        key, upload_id, [PartInfo(n, etags[n]) for n in (1, 2, 3, 4)]
    )
    md5s = b"".join(hashlib.md5(d).digest() for d in part_data)
    assert result.etag == hashlib.md5(md5s).hexdigest().upper() + "-4"
    got = oss_bucket.get_object(key)  # oss2 checks the whole-object CRC64 as it reads
    assert got.read() == b"".join(part_data)
    assert got.headers["x-oss-object-type"] == "Multipart"
    ranged = oss_bucket.get_object(key, byte_range=(100 * KIB - 2, 100 * KIB + 1)).read()
    assert ranged == b"\x01\x01\x02\x02"
    assert oss_server.upload_ids() == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        oss_bucket.complete_multipart_upload(key, upload_id, [PartInfo(1, etags[1])])


def test_list_parts_paging(oss_bucket: oss2.Bucket) -> None:
    upload_id = oss_bucket.init_multipart_upload("pg").upload_id
    for n in range(1, 6):
        oss_bucket.upload_part("pg", upload_id, n, b"x")
    page = oss_bucket.list_parts("pg", upload_id, max_parts=2)
    assert [p.part_number for p in page.parts] == [1, 2]
    assert page.is_truncated and page.next_marker == "2"
    page = oss_bucket.list_parts("pg", upload_id, marker=page.next_marker, max_parts=2)
    assert [p.part_number for p in page.parts] == [3, 4] and page.is_truncated
    page = oss_bucket.list_parts("pg", upload_id, marker=page.next_marker, max_parts=2)
    assert [p.part_number for p in page.parts] == [5] and not page.is_truncated
    assert [p.part_number for p in oss2.PartIterator(oss_bucket, "pg", upload_id, max_parts=2)] == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_complete_errors(oss_bucket: oss2.Bucket) -> None:
    key = "errs"
    upload_id = oss_bucket.init_multipart_upload(key).upload_id
    big = b"b" * (100 * KIB)
    e1 = oss_bucket.upload_part(key, upload_id, 1, big).etag
    e2 = oss_bucket.upload_part(key, upload_id, 2, b"small").etag
    e3 = oss_bucket.upload_part(key, upload_id, 3, b"end").etag

    def code(parts: list[PartInfo]) -> str:
        # bypass oss2's sorting to send parts out of order
        body = "".join(
            f'<Part><PartNumber>{p.part_number}</PartNumber><ETag>"{p.etag}"</ETag></Part>'
            for p in parts
        )
        url = oss_bucket.sign_url("POST", key, 60, params={"uploadId": upload_id})
        r = requests.post(url, data=f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>")
        return _error(r)["Code"]

    assert code([PartInfo(2, e2), PartInfo(1, e1)]) == "InvalidPartOrder"
    assert code([PartInfo(1, e1), PartInfo(1, e1)]) == "InvalidPartOrder"
    assert code([PartInfo(1, e1), PartInfo(4, e1)]) == "InvalidPart"
    assert code([PartInfo(1, e2)]) == "InvalidPart"
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.complete_multipart_upload(
            key, upload_id, [PartInfo(1, e1), PartInfo(2, e2), PartInfo(3, e3)]
        )
    assert (info.value.status, info.value.code) == (400, "EntityTooSmall")
    url = oss_bucket.sign_url("POST", key, 60, params={"uploadId": upload_id})
    assert _error(requests.post(url, data=b"<not-xml"))["Code"] == "MalformedXML"
    # the small part is fine as the last one; unlisted parts are dropped
    oss_bucket.complete_multipart_upload(key, upload_id, [PartInfo(1, e1), PartInfo(2, e2)])
    assert oss_bucket.get_object(key).read() == big + b"small"


def test_complete_all_header(oss_bucket: oss2.Bucket) -> None:
    upload_id = oss_bucket.init_multipart_upload("all").upload_id
    oss_bucket.upload_part("all", upload_id, 2, b"B")
    oss_bucket.upload_part("all", upload_id, 1, b"A" * (100 * KIB))
    oss_bucket.complete_multipart_upload(
        "all", upload_id, None, headers={"x-oss-complete-all": "yes"}
    )
    assert oss_bucket.get_object("all").read() == b"A" * (100 * KIB) + b"B"


def test_abort_and_no_such_upload(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    upload_id = oss_bucket.init_multipart_upload("ab").upload_id
    oss_bucket.upload_part("ab", upload_id, 1, b"x")
    oss_bucket.abort_multipart_upload("ab", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        oss_bucket.upload_part("ab", upload_id, 2, b"x")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        oss_bucket.list_parts("ab", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        oss_bucket.abort_multipart_upload("ab", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        oss_bucket.list_parts("other-key", oss_bucket.init_multipart_upload("k2").upload_id)
    assert list((Path(oss_server.data_dir) / "blobs").iterdir()) == []


def test_part_number_bounds_and_replacement(oss_bucket: oss2.Bucket) -> None:
    upload_id = oss_bucket.init_multipart_upload("pn").upload_id
    for bad in (0, 10001):
        with pytest.raises(oss2.exceptions.InvalidArgument):
            oss_bucket.upload_part("pn", upload_id, bad, b"x")
    oss_bucket.upload_part("pn", upload_id, 1, b"first")
    etag = oss_bucket.upload_part("pn", upload_id, 1, b"second").etag
    parts = oss_bucket.list_parts("pn", upload_id).parts
    assert [(p.part_number, p.etag, p.size) for p in parts] == [(1, etag, 6)]


def test_list_multipart_uploads_paging(oss_bucket: oss2.Bucket) -> None:
    ids = {k: oss_bucket.init_multipart_upload(k).upload_id for k in ("u/1", "u/2", "u/3", "v")}
    listed = [(u.key, u.upload_id) for u in oss2.MultipartUploadIterator(oss_bucket, max_uploads=2)]
    assert listed == sorted(ids.items())
    only_u = oss_bucket.list_multipart_uploads(prefix="u/").upload_list
    assert [u.key for u in only_u] == ["u/1", "u/2", "u/3"]


# faults, restarts
def test_fail_next(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    upload_id = oss_bucket.init_multipart_upload("f").upload_id
    oss_server.fail_next(op="UploadPart", status=500, count=2)
    for _ in range(2):
        with pytest.raises(oss2.exceptions.ServerError) as info:
            oss_bucket.upload_part("f", upload_id, 1, b"x" * 1000)
        assert (info.value.status, info.value.code) == (500, "InternalError")
    oss_bucket.put_object("other-op", b"unaffected")
    oss_bucket.upload_part("f", upload_id, 1, b"x" * 1000)
    oss_server.fail_next(op="GetObject", status=503)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.get_object("other-op")
    assert (info.value.status, info.value.code) == (503, "ServiceUnavailable")
    oss_server.fail_next(op="UploadPart", drop=True, after_bytes=10)
    with pytest.raises(oss2.exceptions.RequestError):
        oss_bucket.upload_part("f", upload_id, 2, b"y" * 100_000)
    assert oss_server.part_numbers(upload_id) == [1]
    assert oss_server.ops("UploadPart") == ["UploadPart"] * 4
    assert ("PUT", "PutObject") in oss_server.requests


def test_stop_and_restart_on_same_port(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    oss_bucket.put_object("survives", b"yes")
    upload_id = oss_bucket.init_multipart_upload("mid").upload_id
    port = oss_server.port
    started = threading.Event()
    errors: list[BaseException] = []

    def slow_body():
        yield b"a" * 1000
        started.set()
        for _ in range(200):
            time.sleep(0.02)
            yield b"b" * 1000

    def upload() -> None:
        try:
            oss_bucket.upload_part("mid", upload_id, 1, slow_body())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=upload)
    t.start()
    assert started.wait(5)
    time.sleep(0.05)
    oss_server.stop()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], oss2.exceptions.RequestError)
    with pytest.raises(oss2.exceptions.RequestError):
        oss_bucket.get_object("survives")
    oss_server.start()
    assert oss_server.port == port
    assert oss_bucket.get_object("survives").read() == b"yes"
    assert oss_bucket.list_parts("mid", upload_id).parts == []  # the cut part was not stored
    oss_server.stop()
    oss_server.start()
    assert oss_bucket.get_object("survives").read() == b"yes"


def test_large_body_streams_to_disk(oss_bucket: oss2.Bucket, oss_server: OssServer) -> None:
    size = 24 << 20
    block = bytes(range(256)) * 4096  # 1 MiB

    def body():
        for _ in range(size // len(block)):
            yield block

    upload_id = oss_bucket.init_multipart_upload("big").upload_id
    etag = oss_bucket.upload_part("big", upload_id, 1, body()).etag
    assert etag == hashlib.md5(block * (size // len(block))).hexdigest().upper()
    part = oss_bucket.list_parts("big", upload_id).parts[0]
    assert part.size == size


def test_main_runs_by_hand(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.oss_server",
            "--port",
            "0",
            "--bucket",
            BUCKET,
            "--access-key-id",
            AK,
            "--access-key-secret",
            SK,
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET)
        bucket.put_object("cli", b"ok")
        assert bucket.get_object("cli").read() == b"ok"
    finally:
        proc.terminate()
        proc.wait(10)
