"""Attacks on signed /play URLs over a real socket: traversal, signature reuse, expiry."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.db import sql
from tests.test_attacks_signing import raw_http
from vasset.playback.urls import play_path

A, B = 900_001, 900_002
CANARY = b"CANARY-must-never-be-served"


def _key(vid: int, rest: str) -> str:
    return f"media/{vid}/1-attack{vid}/{rest}"


@pytest.fixture(scope="module")
def play(server, test_env) -> dict:
    """Renditions of two videos written into the server's local storage, plus the URL secret."""
    root = Path(test_env["VASSET_STORAGE_URL"][len("file://") :])
    objects = root / "objects"
    files = {
        _key(A, "360p.mp4"): b"mp4 of A",
        _key(A, "hls/master.m3u8"): b"#EXTM3U\n360p/index.m3u8\n",
        _key(A, "hls/360p/index.m3u8"): b"#EXTM3U\nseg_00001.m4s\n#EXT-X-ENDLIST\n",
        _key(A, "hls/360p/seg_00001.m4s"): b"segment of A",
        _key(B, "360p.mp4"): b"mp4 of B",
        _key(B, "hls/master.m3u8"): b"#EXTM3U\nB\n",
        f"sources/1/{A}/0123456789abcdef/source": CANARY,
    }
    for key, data in files.items():
        path = objects / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "canary.txt").write_bytes(CANARY)  # outside the object store
    httpx.get(f"{server.url}/play/1/0/x")  # the first /play call creates the URL secret
    secret = sql(test_env, "SELECT secret FROM server_secret WHERE name = 'play_url'")[0][0]
    return {"secret": secret.encode(), "files": files, "port": server.port, "url": server.url}


def signed(play: dict, key: str, expires_at: int | None = None) -> str:
    """The path of a correctly signed /play URL."""
    expires_at = int(time.time()) + 600 if expires_at is None else expires_at
    return play_path(play["secret"], key, expires_at)


def refused(answer, *codes: str) -> None:
    """A 401 InvalidUrlSignature (or one of codes), never the object."""
    status = answer.status if hasattr(answer, "status") else answer.status_code
    body = answer.body if hasattr(answer, "body") else answer.content
    assert status in (401, 404), answer
    assert CANARY not in body and b"of A" not in body and b"of B" not in body, answer
    if body:
        assert answer.json()["code"] in {"InvalidUrlSignature", *codes}, answer


def test_signed_urls_work_and_hls_scope_covers_the_ladder(play):
    for key in (_key(A, "360p.mp4"), _key(B, "360p.mp4")):
        r = httpx.get(play["url"] + signed(play, key))
        assert r.status_code == 200 and r.content == play["files"][key]
    master = signed(play, _key(A, "hls/master.m3u8"))
    for rest in ("master.m3u8", "360p/index.m3u8", "360p/seg_00001.m4s"):
        path = master.replace("master.m3u8", rest)
        r = httpx.get(play["url"] + path)
        assert r.status_code == 200 and r.content == play["files"][_key(A, "hls/" + rest)]


@pytest.mark.parametrize(
    ("signed_key", "used_key"),
    [
        (_key(A, "360p.mp4"), _key(B, "360p.mp4")),  # another video
        (_key(A, "360p.mp4"), _key(A, "hls/master.m3u8")),  # a file for the HLS scope
        (_key(A, "hls/master.m3u8"), _key(A, "360p.mp4")),  # the HLS scope for a file
        (_key(A, "hls/master.m3u8"), _key(B, "hls/master.m3u8")),  # another ladder
        (_key(A, "360p.mp4"), f"sources/1/{A}/0123456789abcdef/source"),  # a source
    ],
)
def test_a_signature_for_one_key_never_opens_another(play, signed_key, used_key):
    expires_at = int(time.time()) + 600
    sig_path = signed(play, signed_key, expires_at)
    forged = sig_path.rsplit("/", len(signed_key.split("/")))[0] + "/" + used_key
    refused(httpx.get(play["url"] + forged))
    refused(httpx.head(play["url"] + forged))


def test_a_signature_for_one_expiry_never_opens_another(play):
    key = _key(A, "360p.mp4")
    expires_at = int(time.time()) + 600
    path = signed(play, key, expires_at)
    assert httpx.get(play["url"] + path).status_code == 200
    for other in (expires_at + 1, expires_at + 10**6, expires_at - 1, 2**62):
        refused(httpx.get(play["url"] + path.replace(f"/{expires_at}/", f"/{other}/", 1)))


def test_an_expired_url_is_refused(play):
    key = _key(A, "360p.mp4")
    for past in (int(time.time()) - 5, 0):
        refused(httpx.get(play["url"] + signed(play, key, past)))


def test_malformed_signatures_and_expiries_are_refused(play):
    key = _key(A, "360p.mp4")
    expires_at = int(time.time()) + 600
    path = signed(play, key, expires_at)
    sig = path.split("/")[3]
    for bad in (sig.upper(), sig[:-1], sig + "0", "", "0" * len(sig), sig[:16]):
        r = raw_http(play["port"], "GET", path.replace(f"/{sig}/", f"/{bad}/", 1))
        refused(r, "NotFound")
    for bad_exp in ("-1", "abc", "1e10", "", str(10**40)):
        r = raw_http(play["port"], "GET", path.replace(f"/{expires_at}/", f"/{bad_exp}/", 1))
        refused(r, "NotFound")


UP = "../" * 4  # from media/{vid}/{attempt}/hls/ back to the object store's root
TRAVERSALS = [
    UP + f"sources/1/{A}/0123456789abcdef/source",
    UP + "../canary.txt",
    "../360p.mp4",
    "360p/../../../" + f"1-attack{B}/360p.mp4",
]
ENCODINGS = {
    "raw": lambda p: p,
    "encoded dots": lambda p: p.replace("..", "%2e%2e"),
    "upper encoded dots": lambda p: p.replace("..", "%2E%2E"),
    "half encoded": lambda p: p.replace("..", ".%2e"),
    "encoded slash": lambda p: p.replace("../", "..%2f"),
    "all encoded": lambda p: p.replace("../", "%2e%2e%2f"),
    "double encoded": lambda p: p.replace("..", "%252e%252e"),
    "double encoded slash": lambda p: p.replace("../", "..%252f"),
    "backslash": lambda p: p.replace("../", "..%5c"),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("traversal", TRAVERSALS)
def test_traversal_out_of_a_signed_hls_scope_is_refused(play, encoding, traversal):
    # The HLS signature covers a whole prefix, so '..' is what would lead out of it.
    master = signed(play, _key(A, "hls/master.m3u8"))
    prefix = master[: -len("master.m3u8")]
    target = prefix + ENCODINGS[encoding](traversal)
    for method in ("GET", "HEAD"):
        refused(raw_http(play["port"], method, target), "NotFound", "ObjectNotFound")


def test_traversal_keys_signed_by_the_issuer_are_still_refused(play):
    # Even a URL the signer produced for a key with '..' must not escape (defence in depth).
    key = _key(A, "hls/") + UP + f"sources/1/{A}/0123456789abcdef/source"
    refused(raw_http(play["port"], "GET", signed(play, key)), "NotFound", "ObjectNotFound")
