"""Upload abuse, instant-upload probing and a seeded fuzz of every route, over a real socket."""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import string

import httpx
import pytest

from tests.conftest import create_app
from tests.support.api import Api, b64name
from tests.test_attacks_signing import raw_http, sign_raw

KIB = 1024
PSIZE = 100 * KIB


def code_of(r) -> str:
    """The error code of an httpx or raw answer."""
    return r.json()["code"]


def started(api: Api, data: bytes, **extra) -> dict:
    """An init answer (asserting it is a normal, non-instant upload)."""
    r = api.init("u.mp4", data, PSIZE, **extra)
    assert r.status_code == 200 and "instant" not in r.json(), r.text
    return r.json()


def missing(api: Api, upid: str) -> list[int]:
    """Parts the server still lacks."""
    return api.call("GET", "/video/upload/resume", {"upid": upid}).json()["missing"]


def part_target(api: Api, upid: str, pseq: int, body: bytes) -> str:
    """The signed request target of a part PUT, hash bound to body."""
    md5 = hashlib.md5(body).hexdigest()
    return "/video/upload/upload?" + sign_raw(
        api, "PUT", "/video/upload/upload", [f"upid={upid}", f"pseq={pseq}", f"hash={md5}"]
    )


# ---- bodies that disagree with their Content-Length


def test_bytes_beyond_content_length_are_never_stored(api, server):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    upid = init["upload_id"]
    # The hash covers the declared bytes; the trailing junk is not part of this request.
    r = raw_http(server.port, "PUT", part_target(api, upid, 1, data[:PSIZE]),
                 {"Content-Length": str(PSIZE)}, data[:PSIZE] + b"JUNK" * 500)  # fmt: skip
    assert r.status == 200, r
    # A hash over declared bytes plus junk cannot match what the server reads.
    r = raw_http(server.port, "PUT", part_target(api, upid, 2, data[PSIZE : 2 * PSIZE] + b"J"),
                 {"Content-Length": str(PSIZE)}, data[PSIZE : 2 * PSIZE] + b"J")  # fmt: skip
    assert r.status == 400 and code_of(r) == "InvalidDigest", r
    assert missing(api, upid) == [2, 3]
    for pseq in (2, 3):
        assert api.put_part(upid, pseq, data[(pseq - 1) * PSIZE : pseq * PSIZE]).status_code == 200
    status = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert status["status"] == "uploaded" and status["md5"] == hashlib.md5(data).hexdigest()


def test_a_body_shorter_than_content_length_stores_nothing(api, server):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    r = raw_http(server.port, "PUT", part_target(api, init["upload_id"], 1, data[:PSIZE]),
                 {"Content-Length": str(PSIZE)}, data[: PSIZE // 3], half_close=True)  # fmt: skip
    assert r.status in (0, 400), r  # 0: the server may just close a connection that went away
    if r.status:
        assert code_of(r) == "IncompleteBody", r
    assert missing(api, init["upload_id"]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("length", "body_size", "code"),
    [
        (PSIZE - 1, PSIZE - 1, "InvalidPartSize"),
        (PSIZE + 1, PSIZE + 1, "InvalidPartSize"),
        (0, 0, "InvalidPartSize"),
        ("99999999999999999999999", 0, None),
        ("12abc", 0, None),
        ("-1", 0, None),
    ],
)
def test_a_wrong_content_length_stores_nothing(api, server, length, body_size, code):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    target = part_target(api, init["upload_id"], 1, data[:PSIZE])
    r = raw_http(server.port, "PUT", target, {"Content-Length": str(length)},
                 data[:body_size])  # fmt: skip
    assert r.status == 400, r
    if code:
        assert code_of(r) == code, r
        if length:
            assert r.json()["expected_size"] == PSIZE
    assert missing(api, init["upload_id"]) == [1, 2, 3]


def test_a_part_without_content_length_is_refused(api, server):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    target = part_target(api, init["upload_id"], 1, data[:PSIZE])
    chunk = data[:PSIZE]
    body = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
    r = raw_http(server.port, "PUT", target, {"Transfer-Encoding": "chunked"}, body)
    assert r.status == 400 and code_of(r) == "InvalidPartSize", r
    assert missing(api, init["upload_id"]) == [1, 2, 3]


@pytest.mark.parametrize("pseq", ["0", "-1", "4", str(2**63), str(2**64), "abc", "1.5", "0x1"])
def test_part_numbers_outside_the_upload_are_refused(api, pseq):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    r = api.call("PUT", "/video/upload/upload", {"upid": init["upload_id"], "pseq": pseq},
                 content=data[:PSIZE])  # fmt: skip
    assert r.status_code == 400 and code_of(r) == "InvalidParameter", r.text
    assert missing(api, init["upload_id"]) == [1, 2, 3]


@pytest.mark.parametrize(
    "content_range",
    ["bytes 0-102399/256001", "bytes 10-5/256000", "bytes 0-256000/256000", "bytes */256000",
     "bytes -1-5/256000", "bytes 0-1/99999999999999999999999", "items 0-1/256000", "bytes 0-1"],
)  # fmt: skip
def test_content_ranges_outside_the_file_are_refused(api, content_range):
    data = os.urandom(250 * KIB)
    init = started(api, data)
    r = api.call("PUT", "/video/upload/upload", {"upid": init["upload_id"]},
                 content=data[:PSIZE], headers={"Content-Range": content_range})  # fmt: skip
    assert r.status_code == 400 and code_of(r) == "InvalidContentRange", r.text
    assert missing(api, init["upload_id"]) == [1, 2, 3]


def test_nothing_can_be_added_to_a_finished_or_failed_upload(api):
    data = os.urandom(150 * KIB)
    init = started(api, data)
    upid, token = init["upload_id"], init["upload_token"]
    for pseq in (1, 2):
        r = api.put_part(upid, pseq, data[(pseq - 1) * PSIZE : pseq * PSIZE])
    assert r.json()["status"] == "uploaded"
    whole = {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}
    # The same bytes again get the completion answer (test_upload_resend.py); other bytes
    # for a stored part, or a whole-file range, can add nothing.
    other = os.urandom(len(data))
    answers = [
        api.put_part(upid, 1, other[:PSIZE]),
        api.call("PUT", "/video/upload/upload", {"upid": upid}, content=data, headers=whole),
        httpx.put(api.base_url + "/video/upload/upload",
                  params={"upid": upid, "pseq": 2, "token": token}, content=other[PSIZE:]),
    ]  # fmt: skip
    for r in answers:
        assert r.status_code == 409 and code_of(r) == "UploadCompleted", r.text
        assert r.json()["vid"] == init["vid"]
    lie = hashlib.md5(b"not these bytes").hexdigest()
    failed = api.call(
        "POST",
        "/video/upload/init",
        {"fn": b64name("f.mp4"), "fsize": len(data), "psize": PSIZE, "hash": lie},
    )
    upid = failed.json()["upload_id"]  # fmt: skip
    api.put_part(upid, 1, data[:PSIZE])
    assert code_of(api.put_part(upid, 2, data[PSIZE:])) == "HashMismatch"
    r = api.put_part(upid, 1, data[:PSIZE])
    assert r.status_code == 409 and code_of(r) == "UploadAborted", r.text


@pytest.mark.parametrize(
    ("fsize", "psize", "status", "code"),
    [
        (2**63 - 1, 1 << 30, 413, "EntityTooLarge"),
        (2**63, 1 << 30, 400, "InvalidParameter"),
        (10**40, 1 << 30, 400, "InvalidParameter"),
        (1000, 2**63, 400, "InvalidParameter"),
        (10 << 20, 0, 400, None),
        (10 << 20, -PSIZE, 400, "InvalidParameter"),
    ],
)
def test_impossible_sizes_at_init_are_refused(api, fsize, psize, status, code):
    params = {"fn": b64name("huge.mp4"), "fsize": fsize, "psize": psize}
    r = api.call("POST", "/video/upload/init", params)
    assert r.status_code == status, r.text
    assert code_of(r) == code if code else code_of(r) in ("InvalidParameter", "InvalidPartSize")


# ---- instant-upload probing


def test_instant_upload_needs_bytes_this_app_uploaded_and_the_server_verified(api, other_api):
    done_data = os.urandom(3 * KIB)
    done = api.upload("v.mp4", done_data, PSIZE)
    assert done["status"] == "uploaded"

    def instant(client: Api, data: bytes, fsize: int | None = None) -> bool:
        params = {"fn": b64name("p.mp4"), "fsize": fsize or len(data), "psize": PSIZE,
                  "hash": hashlib.md5(data).hexdigest()}  # fmt: skip
        r = client.call("POST", "/video/upload/init", params)
        assert r.status_code == 200, r.text
        return bool(r.json().get("instant"))

    assert instant(api, done_data)  # the positive control
    assert not instant(other_api, done_data), "another app's bytes must not be instant"
    assert not instant(api, done_data, fsize=len(done_data) + 1)
    declared = os.urandom(2 * KIB)  # a hash only declared at init, never uploaded
    started(api, declared)
    assert not instant(api, declared)
    partial = os.urandom(150 * KIB)  # one part of two received
    init = started(api, partial)
    api.put_part(init["upload_id"], 1, partial[:PSIZE])
    assert not instant(api, partial)
    deleted = os.urandom(3 * KIB)  # verified, then its only video deleted
    vid = api.upload("d.mp4", deleted, PSIZE)["vid"]
    assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
    assert not instant(api, deleted)


# ---- seeded fuzz: malformed queries and headers, mostly validly signed

FUZZ_CASES = int(os.environ.get("VASSET_FUZZ_CASES", "300"))
FUZZ_SEED = int(os.environ.get("VASSET_FUZZ_SEED", "4500"))
ROUTES = {
    ("GET", "/video/status"): ["vid"],
    ("GET", "/video/mediainfo"): ["vid"],
    ("POST", "/video/delete"): ["vid"],
    ("POST", "/video/transcode"): ["vid", "src", "dst", "priority", "definitions"],
    ("POST", "/video/retranscode"): ["vid", "priority", "definitions"],
    ("POST", "/video/retransocde"): ["vid", "priority"],
    ("GET", "/video/playurl"): ["vid", "definition", "format", "expires"],
    ("GET", "/video/snapshot"): ["vid", "expires"],
    ("GET", "/video/storyboard"): ["vid", "expires"],
    ("GET", "/video/list"): ["status", "limit", "cursor"],
    ("POST", "/video/upload/init"): ["fn", "fsize", "psize", "hash", "auto", "priority", "direct"],
    ("PUT", "/video/upload/upload"): ["upid", "pseq", "hash", "token"],
    ("GET", "/video/upload/resume"): ["upid", "token"],
    ("GET", "/video/upload/limits"): [],
}
JUNK = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "3",
    str(2**31),
    str(2**63),
    str(2**64),
    "9" * 60,
    "1.5",
    "1e3",
    "NaN",
    "inf",
    "true",
    "null",
    "[]",
    "%7B%7D",
    "%",
    "%zz",
    "%00",
    "%FF%FE",
    "%C0%AF",
    "%2e%2e%2f%2e%2e%2f",
    "..%2F..%2Fetc",
    "http://127.0.0.1/",
    "file:///etc/passwd",
    "oss://b/k",
    "a+b",
    "%E8%A7%86",
    "360p,720p",
    "360p,,",
    "4k",
    "hls",
    "mp4",
    "flv",
    "playable",
    "zz",
    "x" * 3000,
    "0" * 32,
    "f" * 32,
    "eC5tcDQ=",
    "_-_-",
    "%0d%0aX-Evil:%201",
]
HEADERS = [
    ("Content-Range", ["bytes 0-0/1", "bytes 0-99/100", "bytes */*", "bytes=0-1", "x"]),
    ("Range", ["bytes=0-", "bytes=-0", "bytes=9-1", "bytes=0-1,2-3", "pages=1"]),
    ("If-None-Match", ["*", '"x"', ""]),
    ("Origin", ["https://evil.example.test", "null"]),
    ("X-Request-Id", ["x" * 500, "../../", "%00"]),
    ("Content-Type", ["text/html", ";;"]),
    ("Cookie", ["vasset_console=forged", "a=" + "b" * 2000]),
]


def documented_codes(root_dir) -> set[str]:
    """Every error code of the table in docs/API.md."""
    text = (root_dir / "docs" / "API.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| [45]\d\d \|", line)]
    return {code for row in rows for code in re.findall(r"`([A-Z][A-Za-z]+)`", row)}


def _value(rng: random.Random, pool: list[str]) -> str:
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(pool)
    if roll < 0.85:
        return rng.choice(JUNK)
    alphabet = string.ascii_letters + string.digits + "-_.~%+=&;/?#[]@!$'()*,: "
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).replace("&", "%26")


def _case(rng: random.Random, api: Api, pool: dict[str, list[str]]) -> tuple:
    (method, path), names = rng.choice(list(ROUTES.items()))
    pairs = [f"{n}={_value(rng, pool.get(n, ['1']))}" for n in names if rng.random() < 0.8]
    if rng.random() < 0.15:
        pairs.append(f"{rng.choice(names or ['x'])}={rng.choice(JUNK)}")  # a duplicate
    if rng.random() < 0.1:
        pairs.append(f"{rng.choice(JUNK)}=1")  # a junk name
    roll = rng.random()
    if roll < 0.8:
        query = sign_raw(api, method, path, pairs)
    elif roll < 0.9:
        query = sign_raw(api, method, path, pairs, timestamp=rng.choice(["0", "x", "-5", ""]))
    else:  # unsigned: a junk signature, or none (token calls and MissingParameter)
        query = "&".join(pairs + ([f"signature={rng.choice(JUNK)}"] if rng.random() < 0.5 else []))
    headers = {}
    for name, values in rng.sample(HEADERS, rng.randint(0, 3)):
        headers[name] = rng.choice(values)
    body = b""
    if method == "PUT":
        body = os.urandom(rng.choice([0, 1, PSIZE - 1, PSIZE, PSIZE + 1]))
    return method, f"{path}?{query}", headers, body


def test_seeded_fuzz_never_answers_5xx(server, test_env, root_dir):
    creds = create_app(test_env, "fuzz")  # its own app: the fuzz can only hurt its own videos
    api = Api(server.url, creds["app_key"], creds["app_secret"])
    video = api.upload("f.mp4", os.urandom(2 * KIB), PSIZE)
    init = api.init("g.mp4", os.urandom(250 * KIB), PSIZE).json()
    pool = {
        "vid": [str(video["vid"]), str(init["vid"])],
        "upid": [init["upload_id"]],
        "token": [init["upload_token"]],
        "pseq": ["1", "2", "3"],
        "fn": [b64name("fuzz.mp4"), "Zm9v", "Zm9v-_"],
        "fsize": [str(250 * KIB), "1", str(10**12)],
        "psize": [str(PSIZE), "1", str(1 << 30)],
        "hash": ["d41d8cd98f00b204e9800998ecf8427e", video["md5"]],
        "cursor": ["", "MTIz", secrets.token_urlsafe(8)],
    }
    codes = documented_codes(root_dir)
    rng = random.Random(FUZZ_SEED)
    failures, seen = [], {}
    for _ in range(FUZZ_CASES):
        method, target, headers, body = _case(rng, api, pool)
        r = raw_http(server.port, method, target, headers, body)
        seen[r.status] = seen.get(r.status, 0) + 1
        if r.status == 0 or r.status >= 500:
            failures.append((method, target[:300], headers, r))
        elif r.status >= 400 and "x-request-id" in r.headers and r.json().get("code") not in codes:
            failures.append((method, target[:300], headers, r))  # an undocumented error code
    print("fuzz answers by status:", dict(sorted(seen.items())))
    assert not failures, (seen, failures[:5])
    assert seen.get(200, 0) > FUZZ_CASES // 20, seen  # enough cases got past the checks
    # The server still answers signed calls after the fuzz.
    assert api.call("GET", "/video/upload/limits").status_code == 200
