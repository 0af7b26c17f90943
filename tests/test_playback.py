"""Playback through a real API and worker: signed URLs, Range, HLS with only its URL, limits."""

from __future__ import annotations

import time
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.stack import Stack
from vasset.playback.files import parse_range
from vasset.playback.urls import cdn_type_a, scope_of, url_signature, verify


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("playback")
    s = Stack(root, VASSET_MAX_CONCURRENT_STREAMS="2").start()
    clip = media.landscape(root / "media")
    done = s.upload(clip)
    status = s.wait(done["vid"])
    assert status["status"] == "playable", status
    s.vid = done["vid"]
    yield s
    s.stop()


def test_playurl_answer_and_urls_work(stack):
    pu = stack.api.call("GET", "/video/playurl", {"vid": stack.vid}).json()
    assert pu["vid"] == stack.vid and pu["duration"] == 3000 and pu["cover_url"]
    formats = {(u["definition"], u["format"]) for u in pu["play_urls"]}
    assert ("360p", "mp4") in formats and ("auto", "hls") in formats
    for u in pu["play_urls"]:
        r = httpx.get(u["url"])
        assert r.status_code == 200
        assert u["expires_at"] > time.time()
        if u["format"] == "mp4":
            assert r.headers["content-type"] == "video/mp4" and len(r.content) == u["size"]
            assert r.content[4:8] == b"ftyp"
    cover = httpx.get(pu["cover_url"])
    assert cover.status_code == 200 and cover.content[:2] == b"\xff\xd8"


def test_playurl_filters(stack):
    only = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "format": "hls"}).json()
    assert [u["format"] for u in only["play_urls"]] == ["hls"]
    one = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "definition": "360p"}).json()
    assert [u["definition"] for u in one["play_urls"]] == ["360p"]
    r = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "definition": "4k"})
    assert r.status_code == 409 and r.json()["code"] == "VideoNotPlayable"
    r = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "format": "flv"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"


def test_url_expires_and_tampering_is_refused(stack):
    # expires_at is whole seconds, so a 3 s lifetime is at least 2 s of validity.
    pu = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "expires": 3}).json()
    url = next(u["url"] for u in pu["play_urls"] if u["format"] == "mp4")
    assert httpx.get(url).status_code == 200
    time.sleep(max(0.0, pu["play_urls"][0]["expires_at"] - time.time()) + 1.1)
    r = httpx.get(url)
    assert r.status_code == 401 and r.json()["code"] == "InvalidUrlSignature"
    fresh = stack.api.call("GET", "/video/playurl", {"vid": stack.vid}).json()
    url = next(u["url"] for u in fresh["play_urls"] if u["format"] == "mp4")
    parts = url.split("/")
    parts[-1] = "480p.mp4"  # another object under the same signature
    assert httpx.get("/".join(parts)).status_code == 401
    exp_index = parts.index("play") + 1
    longer = url.split("/")
    longer[exp_index] = str(int(longer[exp_index]) + 3600)
    assert httpx.get("/".join(longer)).status_code == 401
    assert httpx.get(url.replace("/play/", "/play/../")).status_code in (401, 404)


def test_expires_is_capped(stack):
    pu = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "expires": 10**9}).json()
    assert pu["play_urls"][0]["expires_at"] <= time.time() + 7 * 24 * 3600 + 5
    r = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "expires": 0})
    assert r.status_code == 400


def test_range_requests_return_exact_bytes(stack):
    pu = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "format": "mp4"}).json()
    url = pu["play_urls"][0]["url"]
    whole = httpx.get(url).content
    size = len(whole)
    for header, expect in [
        ("bytes=0-0", whole[:1]),
        ("bytes=100-199", whole[100:200]),
        (f"bytes={size - 10}-", whole[-10:]),
        ("bytes=-25", whole[-25:]),
        (f"bytes=5-{size + 100}", whole[5:]),
    ]:
        r = httpx.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == expect, header
        assert r.headers["content-range"].endswith(f"/{size}")
    r = httpx.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    head = httpx.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    assert head.content == b""
    etag = head.headers["etag"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_hls_master_url_alone_reaches_every_segment(stack):
    pu = stack.api.call("GET", "/video/playurl", {"vid": stack.vid, "format": "hls"}).json()
    master_url = pu["play_urls"][0]["url"]
    master = httpx.get(master_url)
    assert master.status_code == 200 and master.text.startswith("#EXTM3U")
    variants = [line for line in master.text.splitlines() if line and not line.startswith("#")]
    # the 360p,480p ladder on a 320x180 clip: one rung, no upscale; then the audio-only variant
    assert len(variants) == 2 and variants[-1] == "audio/index.m3u8"
    fetched = 0
    for variant in variants:
        v_url = urljoin(master_url, variant)
        playlist = httpx.get(v_url)
        assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
        uris = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
        uris += [
            p.split('URI="')[1].split('"')[0] for p in playlist.text.splitlines() if 'URI="' in p
        ]
        for uri in uris:
            seg = httpx.get(urljoin(v_url, uri))
            assert seg.status_code == 200 and len(seg.content) > 0, uri
            fetched += 1
    assert fetched >= 2


def test_snapshot_answer(stack):
    snap = stack.api.call("GET", "/video/snapshot", {"vid": stack.vid}).json()
    assert snap["vid"] == stack.vid and snap["cover_index"] == 0
    assert [s["index"] for s in snap["snapshots"]] == [0, 1, 2]
    times = [s["time"] for s in snap["snapshots"]]
    assert times == sorted(times) and times[-1] < 3000
    for s in snap["snapshots"]:
        r = httpx.get(s["url"])
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        assert s["width"] == 320 and s["height"] == 180


def test_other_app_gets_404(stack):
    out = stack._run("apps", "create", "intruder", "--json")
    import json

    other = json.loads(out)
    intruder = Api(stack.server.url, other["app_key"], other["app_secret"])
    for path in ("/video/playurl", "/video/snapshot"):
        r = intruder.call("GET", path, {"vid": stack.vid})
        assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"


def test_not_playable_yet_is_409(stack):
    data = b"x" * 1000
    r = stack.api.init("late.mp4", data, 1 << 20).json()
    resp = stack.api.call("GET", "/video/playurl", {"vid": r["vid"]})
    assert resp.status_code == 409 and resp.json()["code"] == "VideoNotPlayable"


def big_object_url(stack, size: int = 256 << 20) -> str:
    """A signed /play URL for a large sparse object written straight into local storage."""
    from tests.support.db import sql
    from vasset.playback.urls import play_path

    key = "media/999/1-bigfile/360p.mp4"
    path = stack.root / "storage" / "objects" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
    secret = sql(stack.env, "SELECT secret FROM server_secret WHERE name = 'play_url'")[0][0]
    return stack.server.url + play_path(secret.encode(), key, int(time.time()) + 600)


def test_concurrent_stream_limit_answers_429(stack):
    stack.api.call("GET", "/video/playurl", {"vid": stack.vid})  # creates the URL secret
    url = big_object_url(stack)
    clients = [httpx.Client(timeout=30) for _ in range(3)]
    streams = []
    try:
        for c in clients[:2]:  # the limit is 2; unread bodies keep both streams open
            cm = c.stream("GET", url)
            response = cm.__enter__()
            assert response.status_code == 200
            streams.append(cm)
        r = clients[2].get(url, headers={"Range": "bytes=0-9"})
        assert r.status_code == 429 and r.json()["code"] == "Throttled"
        assert int(r.headers["retry-after"]) >= 1
    finally:
        for cm in streams:
            cm.__exit__(None, None, None)
        for c in clients:
            c.close()
    for _ in range(50):
        r = httpx.get(url, headers={"Range": "bytes=0-9"})
        if r.status_code != 429:
            break
        time.sleep(0.1)
    assert r.status_code == 206 and r.content == b"\0" * 10


def test_url_primitives():
    secret = b"k" * 32
    key = "media/7/3-abcdef/hls/360p/seg_00001.m4s"
    assert scope_of(key) == "media/7/3-abcdef/hls/"
    assert scope_of("media/7/3-abcdef/360p.mp4") == "media/7/3-abcdef/360p.mp4"
    sig = url_signature(secret, scope_of(key), 2_000_000_000)
    assert verify(secret, "media/7/3-abcdef/hls/master.m3u8", 2_000_000_000, sig, 0)
    assert not verify(secret, "media/7/3-abcdef/360p.mp4", 2_000_000_000, sig, 0)
    assert not verify(secret, key, 2_000_000_000, sig, 2_000_000_001)
    assert parse_range(None, 10) is None and parse_range("bytes=0-1,3-4", 10) is None
    url = cdn_type_a("cdn.example.test", "media/1/2-ab/360p.mp4", "pk", 1700000000)
    assert url.startswith("https://cdn.example.test/media/1/2-ab/360p.mp4?auth_key=1700000000-")
    import hashlib

    ts, rand, uid, digest = url.split("auth_key=")[1].split("-")
    expect = hashlib.md5(f"/media/1/2-ab/360p.mp4-{ts}-{rand}-{uid}-pk".encode()).hexdigest()
    assert digest == expect
