"""tus 1.0.0 and the IETF resumable-upload drafts at /files/, over raw HTTP on a real socket."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime

import pytest

from tests.support.server import ROOT
from tests.support.stack import Stack
from tests.support.tus import (
    GONE,
    OCTETS,
    Tus,
    assert_completed,
    checksum,
    error,
    get_ticket,
    items,
    max_size,
    metadata,
    open_patch,
    path_of,
    read_answer,
    send,
    wait_for,
)

EXTENSIONS = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation"  # noqa: E501
CORS_HEADERS = (
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, Content-Type,"
    " Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, Upload-Defer-Length,"
    " Upload-Concat, Upload-Complete, Upload-Draft-Interop-Version, Upload-Checksum,"
    " Upload-Expires, Location, Tus-Version, Tus-Max-Size, Tus-Extension,"
    " Tus-Checksum-Algorithm, Vasset-Vid, Vasset-Md5"
)


@pytest.fixture
def tus(server, api) -> Tus:
    """A tus client with a ticket of its own (plenty of uses)."""
    return Tus(server.port, get_ticket(api, uses=100))


# -- discovery, creation, HEAD -------------------------------------------------------------


def test_options_needs_no_auth_and_lists_the_server(server):
    answer = send(server.port, "OPTIONS", "/files/")
    assert answer.status == 204, str(answer)
    assert answer.header("Tus-Resumable") == "1.0.0" and answer.header("Tus-Version") == "1.0.0"
    assert items(answer.header("Tus-Extension")) == items(EXTENSIONS)
    assert answer.int_header("Tus-Max-Size") == 50 * 1024**3  # VASSET_MAX_FILE_SIZE default
    assert items(answer.header("Tus-Checksum-Algorithm")) == {"md5", "sha1", "sha256"}


def test_creation_then_head_and_get(server, api, tus):
    meta = metadata(filename="clip.mp4", lang="fr", empty="")
    created = tus.create(1234, headers={"Upload-Metadata": meta})
    assert created.status == 201, str(created)
    location = created.header("Location") or ""
    assert re.fullmatch(rf"http://127\.0\.0\.1:{server.port}/files/[0-9a-f]{{32}}", location)
    assert created.header("Tus-Resumable") == "1.0.0"
    vid = created.int_header("Vasset-Vid")
    expires = parsedate_to_datetime(created.header("Upload-Expires") or "").timestamp()
    assert time.time() + 86400 - 60 < expires < time.time() + 86400 + 60  # VASSET_UPLOAD_TTL

    head = tus.head(location)
    assert head.status == 200 and head.body == b"", str(head)
    assert head.int_header("Upload-Offset") == 0 and head.int_header("Upload-Length") == 1234
    assert head.header("Upload-Defer-Length") is None
    # tusd re-serializes the metadata; the pairs must be the same, not the byte order.
    assert items(head.header("Upload-Metadata")) == items(meta)
    assert "no-store" in (head.header("Cache-Control") or "")
    assert head.int_header("Vasset-Vid") == vid and head.header("Upload-Expires")

    info = tus.info(location)
    assert {"upload_id", "vid", "status", "offset", "length", "md5", "size"} <= set(info)
    assert info["upload_id"] == location.rsplit("/", 1)[1] and info["vid"] == vid
    assert (info["status"], info["offset"], info["length"]) == ("uploading", 0, 1234)
    assert api.call("GET", "/video/status", {"vid": vid}).json()["status"] == "uploading"


def test_patch_at_odd_sizes_completes_with_the_verified_md5(api, tus):
    data = os.urandom(1_000_003)
    path = tus.new(len(data))
    first = tus.patch(path, 0, data[:1])
    assert first.status == 204 and first.int_header("Upload-Offset") == 1, str(first)
    assert first.header("Upload-Expires")
    last = tus.upload(path, data, [7, 65_537, 99_999, 333_331], start=1)
    assert last.int_header("Vasset-Vid") == tus.info(path)["vid"]
    assert_completed(api, tus, path, data, last)
    head = tus.head(path)
    assert head.int_header("Upload-Offset") == head.int_header("Upload-Length") == len(data)


def test_creation_with_upload(api, tus):
    data = os.urandom(300_001)
    created = tus.create(len(data), data[:100_000])
    assert created.status == 201 and created.int_header("Upload-Offset") == 100_000, str(created)
    path = path_of(created.header("Location") or "")
    assert_completed(api, tus, path, data, tus.upload(path, data, [], start=100_000))

    whole = tus.create(len(data), data)
    assert whole.status == 201 and whole.int_header("Upload-Offset") == len(data), str(whole)
    assert_completed(api, tus, path_of(whole.header("Location") or ""), data)


def test_deferred_length_then_declared(api, tus):
    data = os.urandom(200_003)
    path = tus.new(Upload_Defer_Length="1")
    head = tus.head(path)
    assert head.header("Upload-Defer-Length") == "1" and head.header("Upload-Length") is None
    assert tus.patch(path, 0, data[:50_000]).status == 204
    error(tus.patch(path, 50_000, b"", {"Upload-Length": "49999"}), 400, "InconsistentLength")
    declared = {"Upload-Length": str(len(data))}
    assert tus.patch(path, 50_000, data[50_000:100_000], declared).status == 204
    head = tus.head(path)
    assert head.int_header("Upload-Length") == len(data) and not head.header("Upload-Defer-Length")
    other = tus.patch(path, 100_000, data[100_000:], {"Upload-Length": str(len(data) + 1)})
    error(other, 400, "InconsistentLength")
    assert tus.offset(path) == 100_000
    assert_completed(api, tus, path, data, tus.patch(path, 100_000, data[100_000:], declared))


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0", "2.0.0"])
def test_unsupported_tus_resumable_is_412(tus, version):
    path = tus.new(10)
    for method, target in (("POST", "/files/"), ("HEAD", path), ("PATCH", path), ("DELETE", path)):
        more = {"Tus-Resumable": version, "Upload-Length": "10", "Upload-Offset": "0"}
        answer = tus.request(method, target, {**more, "Content-Type": OCTETS})
        assert answer.status == 412 and answer.header("Tus-Version") == "1.0.0", str(answer)
        if method != "HEAD":
            error(answer, 412, "TusVersionUnsupported")
    assert tus.offset(path) == 0  # the DELETE did nothing


@pytest.mark.parametrize("ctype", [None, "application/octet-stream", "text/plain"])
def test_patch_without_offset_octet_stream_is_415(tus, ctype):
    path = tus.new(10)
    error(tus.patch(path, 0, b"0123456789", {"Content-Type": ctype}), 415, "UnsupportedMediaType")
    assert tus.offset(path) == 0


def test_wrong_offset_is_409_offset_mismatch(tus):
    data = os.urandom(1000)
    path = tus.new(len(data))
    assert error(tus.patch(path, 5, data[5:10]), 409, "OffsetMismatch")["offset"] == 0
    assert tus.patch(path, 0, data[:10]).status == 204
    for wrong in (0, 9, 11):
        answer = tus.patch(path, wrong, data[wrong : wrong + 10])
        assert error(answer, 409, "OffsetMismatch")["offset"] == 10
        assert (answer.header("Content-Type") or "").startswith("application/json")
    assert tus.offset(path) == 10


def test_over_max_size_is_413(server, tus):
    error(tus.create(max_size(server.port) + 1), 413, "EntityTooLarge")
    error(tus.create(10, b"x" * 11), 413, "EntityTooLarge")
    path = tus.new(10)
    error(tus.patch(path, 0, b"x" * 11), 413, "EntityTooLarge")
    assert tus.offset(path) == 0
    assert tus.patch(path, 0, b"x" * 4).status == 204
    error(tus.patch(path, 4, b"x" * 7), 413, "EntityTooLarge")
    assert tus.offset(path) == 4


@pytest.mark.parametrize("target", ["0" * 32, "random", "not-an-upload"])
def test_unknown_upload_is_404(tus, target):
    # The random id is drawn here: xdist workers must collect the same test ids.
    path = "/files/" + (secrets.token_hex(16) if target == "random" else target)
    for method in ("HEAD", "PATCH", "DELETE", "GET"):
        answer = tus.request(method, path, {"Content-Type": OCTETS, "Upload-Offset": "0"}, b"x")
        assert answer.status == 404, str(answer)
        if method != "HEAD" and target != "not-an-upload":
            error(answer, 404, "UploadNotFound")


def test_terminated_upload_is_gone_with_its_video(api, tus):
    path = tus.new(5000, os.urandom(1000))
    vid = tus.info(path)["vid"]
    deleted = tus.request("DELETE", path)
    assert deleted.status == 204 and deleted.body == b"", str(deleted)
    assert tus.head(path).status in GONE
    answer = tus.patch(path, 1000, b"y" * 10)
    assert answer.status in GONE and answer.json()["code"] in ("UploadGone", "UploadNotFound")
    assert api.call("GET", "/video/status", {"vid": vid}).status_code == 404

    done = tus.new(3, b"abc")
    error(tus.request("DELETE", done), 409, "UploadCompleted")
    assert tus.info(done)["status"] == "uploaded"


@pytest.fixture(scope="module")
def short_ttl(tmp_path_factory):
    """A private stack whose uploads expire after 2 seconds (VASSET_UPLOAD_TTL)."""
    stack = Stack(tmp_path_factory.mktemp("tus-ttl"), workers=0, VASSET_UPLOAD_TTL="2").start()
    yield stack
    stack.stop()


def test_expired_upload_is_410(short_ttl):
    assert short_ttl.server is not None
    tus = Tus(short_ttl.server.port, get_ticket(short_ttl.api, uses=5))
    created = tus.create(100, b"x" * 10)
    path = path_of(created.header("Location") or "")
    expires = parsedate_to_datetime(created.header("Upload-Expires") or "").timestamp()
    assert expires <= time.time() + 3
    time.sleep(max(0.0, expires - time.time()) + 1.5)
    # Past Upload-Expires, before any janitor: the server must not take more bytes.
    error(tus.patch(path, 10, b"y" * 10), 410, "UploadGone")
    subprocess.run(
        [sys.executable, "-m", "vasset", "janitor"],
        env={**os.environ, **short_ttl.env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert tus.head(path).status == 410
    error(tus.patch(path, 10, b"y" * 10), 410, "UploadGone")
    status = short_ttl.api.call("GET", "/video/status", {"vid": tus.info(path)["vid"]}).json()
    assert status["status"] == "upload_failed" and "UploadExpired" in status["error"]


@pytest.mark.parametrize("value", [None, "abc", "-1", "1.5", "", "1e3", "9" * 30])
def test_malformed_upload_offset_is_400(tus, value):
    path = tus.new(10)
    body = error(tus.patch(path, 0, b"x", {"Upload-Offset": value}), 400, "InvalidHeader")
    assert body["header"] == "Upload-Offset" and tus.offset(path) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Length": "abc"},
        {"Upload-Length": "-1"},
        {"Upload-Length": "1.5"},
        {"Upload-Length": ""},
        {},
        {"Upload-Length": "10", "Upload-Defer-Length": "1"},
        {"Upload-Defer-Length": "0"},
        {"Upload-Defer-Length": "yes"},
        {"Upload-Length": "10", "Upload-Metadata": "filename !!!not-base64"},
        {"Upload-Length": "10", "Upload-Metadata": "filename YQ== extra"},
        {"Upload-Concat": "bogus", "Upload-Length": "10"},
        {"Upload-Concat": "final"},
        {"Upload-Concat": "final;"},
        {"Upload-Concat": "partial;x", "Upload-Length": "10"},
    ],
)
def test_malformed_creation_headers_are_400(tus, headers):
    answer = tus.create(headers=headers)
    body = error(answer, 400, "InvalidHeader")
    named = next((n for n in ("Upload-Metadata", "Upload-Concat") if n in headers), None)
    if named or ("Upload-Defer-Length" not in headers and headers):
        assert body["header"] == (named or "Upload-Length"), str(answer)


# -- checksums, concatenation, method override, CORS ---------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_checksum_mismatch_is_460_and_keeps_the_offset(api, tus, algorithm):
    data = os.urandom(150_001)
    path = tus.new(len(data))
    first, rest = data[:70_000], data[70_000:]
    flipped = rest[:-1] + bytes([rest[-1] ^ 1])
    bad = tus.patch(path, 0, first, {"Upload-Checksum": checksum(algorithm, first[1:])})
    error(bad, 460, "ChecksumMismatch")
    assert tus.offset(path) == 0
    assert tus.patch(path, 0, first, {"Upload-Checksum": checksum(algorithm, first)}).status == 204
    bad = tus.patch(path, 70_000, rest, {"Upload-Checksum": checksum(algorithm, flipped)})
    error(bad, 460, "ChecksumMismatch")
    assert tus.offset(path) == 70_000
    good = tus.patch(path, 70_000, rest, {"Upload-Checksum": checksum(algorithm, rest)})
    assert good.status == 204, str(good)
    assert_completed(api, tus, path, data, good)


@pytest.mark.parametrize("value", ["crc32 AAAAAA==", "sha512 AAAA", "md5", "md5 !!!"])
def test_unusable_checksum_header_is_400(tus, value):
    path = tus.new(10)
    answer = tus.patch(path, 0, b"x" * 10, {"Upload-Checksum": value})
    assert answer.status == 400, str(answer)
    if " " in value and not value.startswith("md5"):
        error(answer, 400, "UnsupportedChecksum")
    assert tus.offset(path) == 0


def test_concatenation_of_two_partials(server, api, tus):
    a, b = os.urandom(123_457), os.urandom(98_765)
    parts = []
    for data in (a, b):
        created = tus.create(len(data), headers={"Upload-Concat": "partial"})
        assert created.status == 201 and created.header("Vasset-Vid") is None, str(created)
        parts.append(path_of(created.header("Location") or ""))
        tus.upload(parts[-1], data, [50_000])
        assert tus.head(parts[-1]).header("Upload-Concat") == "partial"
    unfinished = tus.new(10, Upload_Concat="partial")
    refused = tus.create(headers={"Upload-Concat": f"final;{parts[0]} {unfinished}"})
    assert refused.status == 400, str(refused)  # tusd: a partial upload is not finished
    # One absolute URL and one path: clients send either.
    final = tus.create(headers={"Upload-Concat": f"final;{server.url}{parts[0]} {parts[1]}"})
    assert final.status == 201 and final.int_header("Vasset-Vid") > 0, str(final)
    path = path_of(final.header("Location") or "")
    head = tus.head(path)
    assert (head.header("Upload-Concat") or "").startswith("final;")
    assert head.int_header("Upload-Offset") == head.int_header("Upload-Length") == len(a + b)
    assert_completed(api, tus, path, a + b)


def test_x_http_method_override(tus):
    data = os.urandom(2000)
    path = tus.new(len(data))
    override = {"Content-Type": OCTETS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"}
    patched = tus.request("POST", path, override, data[:500])
    assert patched.status == 204 and patched.int_header("Upload-Offset") == 500, str(patched)
    head = tus.request("POST", path, {"X-HTTP-Method-Override": "HEAD"})
    assert head.status == 200 and head.int_header("Upload-Offset") == 500, str(head)
    assert tus.request("POST", path, {"X-HTTP-Method-Override": "DELETE"}).status == 204
    assert tus.head(path).status in GONE


def test_cors_preflight_and_exposed_headers(server, tus):
    origin = "https://app.example.test"
    asked = "authorization, tus-resumable, upload-offset, upload-checksum, content-type"
    pre = send(
        server.port,
        "OPTIONS",
        "/files/",
        {
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert pre.status in (200, 204), str(pre)
    assert pre.header("Access-Control-Allow-Origin") == origin
    methods = items(pre.header("Access-Control-Allow-Methods"))
    assert {"post", "head", "patch", "options", "get", "delete"} <= methods
    assert items(CORS_HEADERS) <= items(pre.header("Access-Control-Allow-Headers"))
    created = tus.create(10, headers={"Origin": origin})
    refused = tus.create(10, headers={"Origin": origin, "Tus-Resumable": "0.2.2"})
    for answer in (created, refused):
        assert answer.header("Access-Control-Allow-Origin") == origin, str(answer)
        assert items(CORS_HEADERS) <= items(answer.header("Access-Control-Expose-Headers"))


# -- cut and concurrent bodies -------------------------------------------------------------


def test_patch_cut_mid_body_keeps_what_arrived(server, api, tus):
    data = os.urandom(1_000_001)
    path = tus.new(len(data))
    assert tus.patch(path, 0, data[:123]).status == 204
    offset = 123
    for sent in (300_007, 1):
        headers = tus.headers({"Content-Type": OCTETS, "Upload-Offset": str(offset)})
        s = open_patch(server.port, path, headers, len(data) - offset, data[offset : offset + sent])
        s.close()
        offset += sent
        arrived = wait_for(lambda at=offset: tus.offset(path) == at)
        assert arrived, (tus.offset(path), offset)
    # The server may still be letting go of the cut request's lock: a client retries 423.
    last = wait_for(lambda: (a := tus.patch(path, offset, data[offset:])).status != 423 and a)
    assert last and last.status == 204, str(last)
    assert_completed(api, tus, path, data, last)


def test_second_concurrent_patch_is_423_at_once(server, api, tus):
    data = os.urandom(200_000)
    path = tus.new(len(data))
    headers = tus.headers({"Content-Type": OCTETS, "Upload-Offset": "0"})
    s = open_patch(server.port, path, headers, len(data), data[:50_000])
    try:
        # Polling with PATCHes could take the upload before the first request does: wait.
        time.sleep(1.0)
        for body in (b"", data[:10]):
            started = time.monotonic()
            error(tus.patch(path, 0, body), 423, "UploadLocked")
            assert time.monotonic() - started < 2
        s.sendall(data[50_000:])
        done = read_answer(s)
    finally:
        s.close()
    assert done.status == 204, str(done)
    assert_completed(api, tus, path, data, done)
