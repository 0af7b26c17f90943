"""playback_policy signed|public end to end (API + worker, local disk and the OSS test server)."""

from __future__ import annotations

import json
from urllib.parse import urljoin

import httpx
import pytest
from vasset_client import Client
from vasset_client import errors as sdk_errors

from tests import media
from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.server import ServerProcess
from tests.support.stack import Stack
from tests.support.tus import Tus, get_ticket
from vasset.playback.policy import PUBLIC_CACHE, public_path


@pytest.fixture(scope="module", params=["local", "oss"])
def stack(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"policy-{request.param}")
    env: dict[str, str] = {}
    oss = None
    if request.param == "oss":
        data = root / "oss-data"
        data.mkdir()
        oss = OssServer(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET, data_dir=data)
        oss.start()
        env = {
            "VASSET_STORAGE_URL": f"oss://{OSS_BUCKET}/vasset",
            "VASSET_OSS_ENDPOINT": oss.endpoint,
            "VASSET_OSS_BUCKET": OSS_BUCKET,
            "VASSET_OSS_ACCESS_KEY_ID": OSS_ACCESS_KEY_ID,
            "VASSET_OSS_ACCESS_KEY_SECRET": OSS_ACCESS_KEY_SECRET,
        }
    # playurl answers are not cached between calls here: a policy change shows at once
    s = Stack(root, VASSET_PLAYURL_CACHE_TTL="0", **env).start()
    s.kind = request.param
    s.oss = oss
    clip = media.landscape(root / "media")
    s.public_vid = s.upload(clip, playback_policy="public")["vid"]
    # the same bytes again: an instant upload, signed by default
    s.signed_vid = s.upload(clip)["vid"]
    for vid in (s.public_vid, s.signed_vid):
        assert s.wait(vid)["status"] == "playable"
    yield s
    s.stop()
    if oss is not None:
        oss.close()


def playurl(stack, vid: int) -> dict:
    r = stack.api.call("GET", "/video/playurl", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


def public_urls(answer: dict) -> list[str]:
    return [u["url"] for u in answer["play_urls"]] + [answer["cover_url"]]


def test_public_urls_are_stable_and_work_without_a_signature(stack):
    first = playurl(stack, stack.public_vid)
    second = playurl(stack, stack.public_vid)
    assert first == second and first["playback_policy"] == "public"
    base = stack.server.url + "/pub/"
    for u in first["play_urls"]:
        assert u["expires_at"] is None and u["url"].startswith(base)
        assert "expires" not in u["url"].lower() and "signature" not in u["url"].lower()
    assert first["cover_url"].startswith(base)
    mp4 = next(u for u in first["play_urls"] if u["format"] == "mp4")
    r = httpx.get(mp4["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert len(r.content) == mp4["size"] and r.content[4:8] == b"ftyp"
    assert r.headers["cache-control"] == PUBLIC_CACHE and r.headers["etag"]
    assert httpx.get(mp4["url"], headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    part = httpx.get(mp4["url"], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == r.content[:10]
    cover = httpx.get(first["cover_url"])
    assert cover.status_code == 200 and cover.content[:2] == b"\xff\xd8"
    assert cover.headers["cache-control"] == PUBLIC_CACHE


def test_public_hls_reaches_every_segment_through_stable_urls(stack):
    answer = playurl(stack, stack.public_vid)
    master_url = next(u["url"] for u in answer["play_urls"] if u["format"] == "hls")
    master = httpx.get(master_url)
    assert master.status_code == 200 and master.text.startswith("#EXTM3U")
    assert master.headers["cache-control"] == "public, no-cache"
    fetched = 0
    for variant in [x for x in master.text.splitlines() if x and not x.startswith("#")]:
        playlist = httpx.get(urljoin(master_url, variant))
        assert playlist.status_code == 200
        uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
        uris += [
            x.split('URI="')[1].split('"')[0] for x in playlist.text.splitlines() if 'URI="' in x
        ]
        for uri in uris:
            url = urljoin(urljoin(master_url, variant), uri)
            assert url.startswith(stack.server.url + "/pub/"), url  # stable, no presigning
            got = httpx.get(url)
            assert got.status_code == 200 and got.headers["cache-control"] == PUBLIC_CACHE
            fetched += 1
    assert fetched >= 2


def test_snapshots_and_thumbnails_of_a_public_video(stack):
    snaps = stack.api.call("GET", "/video/snapshot", {"vid": stack.public_vid}).json()
    assert snaps["snapshots"]
    again = stack.api.call("GET", "/video/snapshot", {"vid": stack.public_vid}).json()
    assert snaps == again
    for snap in snaps["snapshots"]:
        assert snap["expires_at"] is None
        assert httpx.get(snap["url"]).content[:2] == b"\xff\xd8"
    params = {"vid": stack.public_vid, "time": 1000, "width": 64, "format": "webp"}
    thumb = stack.api.call("GET", "/video/thumbnail", params).json()
    assert thumb["expires_at"] is None and thumb["url"].startswith(stack.server.url + "/pub/")
    assert stack.api.call("GET", "/video/thumbnail", params).json() == thumb
    got = httpx.get(thumb["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
    assert got.content[:4] == b"RIFF" and got.content[8:12] == b"WEBP"


def test_signed_behaviour_is_unchanged(stack):
    answer = playurl(stack, stack.signed_vid)
    assert answer["playback_policy"] == "signed"
    for u in answer["play_urls"]:
        assert isinstance(u["expires_at"], int) and "/pub/" not in u["url"]
        assert httpx.get(u["url"]).status_code == 200
    mp4 = next(u["url"] for u in answer["play_urls"] if u["format"] == "mp4")
    if stack.kind == "local":
        assert mp4.startswith(stack.server.url + "/play/")
        assert httpx.get(mp4).headers["cache-control"].startswith("private, max-age=")
    else:
        assert mp4.startswith(stack.oss.endpoint)
    # the signed video's objects are not reachable under any /pub path
    key = "media/" + mp4.split("?")[0].split("/media/", 1)[1]
    public = playurl(stack, stack.public_vid)["play_urls"][0]["url"]
    token = public.split("/pub/", 1)[1].split("/", 1)[0]
    for guess in (token, "0" * 32):
        r = httpx.get(stack.server.url + public_path(guess, key))
        assert r.status_code == 404 and r.json()["code"] == "ObjectNotFound"


def test_switching_back_to_signed_revokes_public_urls(stack):
    vid = stack.upload(media.landscape(stack.root / "media"))["vid"]
    assert stack.wait(vid)["status"] == "playable"
    r = stack.api.call("POST", "/video/policy", {"vid": vid, "playback_policy": "public"})
    assert r.status_code == 200 and r.json() == {"vid": vid, "playback_policy": "public"}
    public = playurl(stack, vid)
    urls = public_urls(public)
    assert all("/pub/" in u and httpx.get(u).status_code == 200 for u in urls)
    # public again: nothing changes, the URLs stay
    stack.api.call("POST", "/video/policy", {"vid": vid, "playback_policy": "public"})
    assert playurl(stack, vid) == public
    r = stack.api.call("POST", "/video/policy", {"vid": vid, "playback_policy": "signed"})
    assert r.status_code == 200 and r.json()["playback_policy"] == "signed"
    for u in urls:
        got = httpx.get(u)
        assert got.status_code == 404 and got.json()["code"] == "ObjectNotFound"
    signed = playurl(stack, vid)
    assert signed["playback_policy"] == "signed"
    assert all(isinstance(u["expires_at"], int) for u in signed["play_urls"])
    # public once more: new URLs; the old ones stay dead
    stack.api.call("POST", "/video/policy", {"vid": vid, "playback_policy": "public"})
    renewed = public_urls(playurl(stack, vid))
    assert not set(renewed) & set(urls)
    assert all(httpx.get(u).status_code == 200 for u in renewed)
    assert all(httpx.get(u).status_code == 404 for u in urls)


def test_policy_bad_input_and_isolation(stack):
    r = stack.api.call("POST", "/video/policy", {"vid": stack.public_vid, "playback_policy": "x"})
    assert r.status_code == 400 and r.json()["parameter"] == "playback_policy"
    r = stack.api.call("POST", "/video/policy", {"vid": stack.public_vid})
    assert r.status_code == 400 and r.json()["code"] == "MissingParameter"
    created = json.loads(stack._run("apps", "create", "other", "--json"))
    stranger = Api(stack.api.base_url, created["app_key"], created["app_secret"])
    r = stranger.call(
        "POST", "/video/policy", {"vid": stack.public_vid, "playback_policy": "signed"}
    )
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    assert playurl(stack, stack.public_vid)["playback_policy"] == "public"
    r = stack.api.init("x.mp4", b"x" * 10, 1 << 20, playback_policy="open")
    assert r.status_code == 400 and r.json()["parameter"] == "playback_policy"


def test_a_public_ticket_makes_public_videos(stack):
    data = media.landscape(stack.root / "media").read_bytes()
    tus = Tus(stack.server.port, get_ticket(stack.api, auto=1, playback_policy="public"))
    path = tus.new(len(data), data)
    vid = tus.info(path)["vid"]
    assert stack.wait(vid)["status"] == "playable"
    answer = playurl(stack, vid)
    assert answer["playback_policy"] == "public"
    assert all(u["expires_at"] is None and "/pub/" in u["url"] for u in answer["play_urls"])
    assert httpx.get(answer["play_urls"][0]["url"]).status_code == 200
    r = stack.api.call("POST", "/video/upload/ticket", {"playback_policy": "secret"})
    assert r.status_code == 400 and r.json()["parameter"] == "playback_policy"


def test_python_sdk_thumbnail_and_policy(stack):
    with Client(stack.server.url, stack.app["app_key"], stack.app["app_secret"]) as client:
        vid = stack.public_vid
        thumb = client.thumbnail(vid, time=500, width=96, format="jpg")
        assert thumb["expires_at"] is None and thumb["height"] == 54
        assert client.set_playback_policy(vid, "public") == {
            "vid": vid,
            "playback_policy": "public",
        }
        with pytest.raises(sdk_errors.VideoNotFound):
            client.set_playback_policy(2_000_000_000, "signed")
        with pytest.raises(sdk_errors.InvalidParameter):
            client.thumbnail(vid, width=33)


def test_fast_path_and_litestar_route_answer_alike(stack):
    # With tracing on, playurl is served by the Litestar route instead of the edge fast path.
    traced = ServerProcess(
        {**stack.env, "VASSET_OTEL_ENDPOINT": "http://127.0.0.1:9"},
        log_path=stack.root / "api-traced.log",
    ).start()
    try:
        route = Api(traced.url, stack.app["app_key"], stack.app["app_secret"])
        for vid in (stack.public_vid, stack.signed_vid):
            fast = playurl(stack, vid)
            slow = route.call("GET", "/video/playurl", {"vid": vid})
            assert slow.status_code == 200, slow.text
            slow_body = json.loads(slow.text.replace(traced.url, stack.server.url))
            if fast["playback_policy"] == "public":
                assert slow_body == fast
            else:
                for answer in (fast, slow_body):
                    answer["cover_url"] = None
                    for u in answer["play_urls"]:
                        u["url"] = u["expires_at"] = None
                assert slow_body == fast
    finally:
        traced.stop()


def test_public_storyboard_is_stable_and_its_cues_resolve(stack):
    board = stack.api.call("GET", "/video/storyboard", {"vid": stack.public_vid})
    assert board.status_code == 200, board.text
    answer = board.json()
    assert answer == stack.api.call("GET", "/video/storyboard", {"vid": stack.public_vid}).json()
    assert answer["expires_at"] is None and answer["vtt_url"].startswith(stack.server.url + "/pub/")
    vtt = httpx.get(answer["vtt_url"])
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    cues = [line for line in vtt.text.splitlines() if "#xywh=" in line]
    assert cues
    for cue in cues:
        sheet = httpx.get(urljoin(answer["vtt_url"], cue.split("#")[0]))
        assert sheet.status_code == 200 and sheet.content[:2] == b"\xff\xd8"
    for sheet in answer["sheets"]:
        assert sheet["expires_at"] is None and httpx.get(sheet["url"]).status_code == 200
    signed = stack.api.call("GET", "/video/storyboard", {"vid": stack.signed_vid}).json()
    assert isinstance(signed["expires_at"], int) and "/pub/" not in signed["vtt_url"]


def test_captions_of_a_public_video_are_public_too(stack):
    vtt = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n"
    r = stack.api.call(
        "PUT", "/video/captions", {"vid": stack.public_vid, "lang": "en"}, content=vtt
    )
    assert r.status_code == 200, r.text
    try:
        answer = playurl(stack, stack.public_vid)
        (caption,) = answer["captions"]
        base = stack.server.url + "/pub/"
        assert caption["url"].startswith(base) and "signature" not in caption["url"].lower()
        assert httpx.get(caption["url"]).content == vtt
        master_url = next(u["url"] for u in answer["play_urls"] if u["format"] == "hls")
        master = httpx.get(master_url)
        assert master.headers["cache-control"] == "public, no-cache"
        media = next(x for x in master.text.splitlines() if "TYPE=SUBTITLES" in x)
        subs = httpx.get(urljoin(master_url, media.split('URI="')[1].split('"')[0]))
        assert subs.status_code == 200, subs.text
        (uri,) = [x for x in subs.text.splitlines() if x and not x.startswith("#")]
        assert uri.startswith(base)
        assert httpx.get(urljoin(subs.url.__str__(), uri)).content == vtt
    finally:
        stack.api.call("POST", "/video/captions/delete", {"vid": stack.public_vid, "lang": "en"})
