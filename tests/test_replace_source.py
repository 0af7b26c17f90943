"""Replace the source, keep the vid (init ... &replace=VID), end to end on local disk and OSS.

While the new source uploads and transcodes, status and playurl keep answering the old set;
the transcode's publish swaps renditions and source in one transaction, and the old source's
bytes go. An upload that expires, or a new source that fails its transcode, leaves the video
as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.workers import Stack

SMALL = {"VASSET_LADDER": "240p,360p", "VASSET_IMAGE_COUNT": "1"}
PSIZE = 100 * 1024


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("replacemedia")
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "600k"]
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "3", *x264, d / "old.mp4")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "4", *x264, d / "new.mp4")
    (d / "notavideo.mp4").write_bytes(b"this is not a video, " * 6000)
    return d


def status(api: Api, vid: int) -> dict:
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(api: Api, vid: int, until: tuple[str, ...], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(api, vid)
        if st["status"] in until:
            return st
        time.sleep(0.1)
    raise AssertionError(f"video {vid} is still {st}")


def played(api: Api, vid: int) -> tuple[int, set[tuple[int, int]]]:
    """(duration, {(width, height)} of its MP4s) from playurl."""
    r = api.call("GET", "/video/playurl", {"vid": vid})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["duration"], {(u["width"], u["height"]) for u in body["play_urls"]}


def source_of(env: dict, vid: int) -> tuple[str, str]:
    key, md5 = sql(env, "SELECT storage_uri, hash FROM video WHERE id = :v", v=vid)[0]
    return key, md5


def replacements(env: dict, vid: int) -> list[tuple]:
    return sql(env, "SELECT state, storage_key FROM source_replacement WHERE video_id = :v", v=vid)


def start_replace(api: Api, vid: int, data: bytes, **extra) -> dict:
    r = api.init("new.mp4", data, PSIZE, replace=vid, **extra)
    assert r.status_code == 200, r.text
    return r.json()


def send_parts(api: Api, init: dict, data: bytes, parts: range | None = None) -> dict:
    answer: dict = {}
    for i in parts or range(init["part_count"]):
        r = api.put_part(init["upload_id"], i + 1, data[i * PSIZE : (i + 1) * PSIZE])
        assert r.status_code == 200, r.text
        answer = r.json()
    return answer


OLD = (3000, {(320, 180)})
NEW = (4000, {(426, 240), (640, 360)})


def exists(stack: Stack, oss_server, key: str) -> bool:
    if oss_server is None:
        return (stack.storage / key).exists()
    return f"vasset/{key}" in oss_server.object_keys()


def replace_walk(stack: Stack, api: Api, media_dir: Path, oss_server=None) -> None:
    """The whole story: old plays during the new upload and transcode, then the new set."""
    old = media_dir / "old.mp4"
    vid = api.upload(old.name, old.read_bytes(), PSIZE, auto=1)["vid"]
    wait_status(api, vid, ("playable",))
    assert played(api, vid) == OLD
    old_key, _ = source_of(stack.env, vid)
    data = (media_dir / "new.mp4").read_bytes()
    init = start_replace(api, vid, data)
    assert init["vid"] == vid and init["part_count"] > 1
    send_parts(api, init, data, range(1))
    # half uploaded: the video is as it was, and a second replacement is refused
    assert status(api, vid)["status"] == "playable"
    assert played(api, vid) == OLD
    r = api.init("again.mp4", data, PSIZE, replace=vid)
    assert (r.status_code, r.json()["code"]) == (409, "InvalidState"), r.text
    done = send_parts(api, init, data, range(1, init["part_count"]))
    assert done["status"] == "uploaded" and done["vid"] == vid
    # transcoding the new source (read at real time by this fleet): the old set still plays
    st = wait_status(api, vid, ("transcoding",))
    assert st["ladder"] == "complete", st
    assert played(api, vid) == OLD
    assert source_of(stack.env, vid)[0] == old_key
    wait_status(api, vid, ("playable",))
    assert played(api, vid) == NEW
    new_key, md5 = source_of(stack.env, vid)
    assert new_key != old_key and md5 == hashlib.md5(data).hexdigest()
    assert replacements(stack.env, vid) == []
    assert exists(stack, oss_server, new_key) and not exists(stack, oss_server, old_key)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("replace"), "replace", **SMALL).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def fleet(stack):
    # Real-time reads: a 4 s source transcodes for about 4 s, long enough to look at it.
    with stack.fleet("replacefleet", VASSET_FFMPEG_READRATE="1") as fleet:
        fleet.start(1)
        yield fleet


@pytest.fixture(scope="module")
def api(stack, fleet) -> Api:
    return stack.api()


def test_replace_keeps_playing_the_old_set_then_switches(stack, api, media_dir):
    replace_walk(stack, api, media_dir)


def test_a_new_source_that_fails_leaves_the_video_as_it_was(stack, api, media_dir):
    old = media_dir / "old.mp4"
    vid = api.upload(old.name, old.read_bytes(), PSIZE, auto=1)["vid"]
    wait_status(api, vid, ("playable",))
    before = source_of(stack.env, vid)
    bad = (media_dir / "notavideo.mp4").read_bytes()
    init = start_replace(api, vid, bad)
    new_key = replacements(stack.env, vid)[0][1]
    assert send_parts(api, init, bad)["status"] == "uploaded"
    st = wait_status(api, vid, ("transcode_failed",))
    assert st["error"].startswith("UnsupportedMedia") or st["error"].startswith("NotAVideo"), st
    # as a failed retranscode: the old renditions still play, the old source is kept
    assert played(api, vid) == OLD
    assert source_of(stack.env, vid) == before
    assert replacements(stack.env, vid) == []
    assert (stack.storage / before[0]).exists() and not (stack.storage / new_key).exists()


def test_an_expired_replacement_upload_leaves_the_video_as_it_was(stack, api, media_dir):
    old = media_dir / "old.mp4"
    vid = api.upload(old.name, old.read_bytes(), PSIZE, auto=1)["vid"]
    wait_status(api, vid, ("playable",))
    before = source_of(stack.env, vid)
    data = (media_dir / "new.mp4").read_bytes()
    init = start_replace(api, vid, data)
    send_parts(api, init, data, range(1))
    sql(stack.env, "UPDATE upload SET expires_at = 1 WHERE upload_id = :u", u=init["upload_id"])
    stack.cli("janitor")
    assert status(api, vid)["status"] == "playable"
    assert played(api, vid) == OLD
    assert source_of(stack.env, vid) == before
    assert replacements(stack.env, vid) == []
    upload = sql(stack.env, "SELECT status FROM upload WHERE upload_id = :u", u=init["upload_id"])
    assert upload == [("expired",)]
    # and the video can be replaced again
    init = start_replace(api, vid, data)
    assert init["vid"] == vid


def test_deleting_a_video_drops_its_pending_replacement(stack, api, media_dir):
    old = media_dir / "old.mp4"
    vid = api.upload(old.name, old.read_bytes(), PSIZE, auto=1)["vid"]
    wait_status(api, vid, ("playable",))
    data = (media_dir / "new.mp4").read_bytes()
    init = start_replace(api, vid, data)
    send_parts(api, init, data, range(1))
    ((_, new_key),) = replacements(stack.env, vid)
    (multipart,) = sql(
        stack.env, "SELECT multipart_id FROM upload WHERE upload_id = :u", u=init["upload_id"]
    )[0]
    mp_dir = stack.storage.parent / "multipart" / multipart
    assert mp_dir.is_dir()
    assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
    # the replacement row, its multipart upload and any object of it are gone with the video
    assert replacements(stack.env, vid) == []
    assert not mp_dir.exists() and not (stack.storage / new_key).exists()
    upload = sql(stack.env, "SELECT status FROM upload WHERE upload_id = :u", u=init["upload_id"])
    assert upload == [("aborted",)]


def test_replace_is_refused_for_busy_foreign_or_unknown_videos(stack, api, media_dir):
    data = (media_dir / "new.mp4").read_bytes()
    uploading = api.init("x.mp4", data, PSIZE, with_hash=False).json()
    assert uploading["status"] == "uploading"
    r = api.init("new.mp4", data, PSIZE, replace=uploading["vid"])
    assert (r.status_code, r.json()["code"]) == (409, "InvalidState"), r.text
    other = json.loads(stack.cli("apps", "create", "other", "--json"))
    assert stack.server is not None
    theirs = Api(stack.server.url, other["app_key"], other["app_secret"])
    their_vid = theirs.upload("old.mp4", (media_dir / "old.mp4").read_bytes(), PSIZE)["vid"]
    r = api.init("new.mp4", data, PSIZE, replace=their_vid)
    assert (r.status_code, r.json()["code"]) == (404, "VideoNotFound"), r.text
    r = api.init("new.mp4", data, PSIZE, replace=2**40)
    assert (r.status_code, r.json()["code"]) == (404, "VideoNotFound"), r.text
    r = theirs.init("new.mp4", data, PSIZE, replace=their_vid, ttl=60)
    assert (r.status_code, r.json()["code"]) == (400, "InvalidParameter"), r.text
    assert replacements(stack.env, their_vid) == []


# ---- the same on the OSS test server


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env, tmp_path / "oss", f"replaceoss{os.getpid()}", oss_server.endpoint, **SMALL
    )


def test_replace_on_oss(oss_stack, oss_server, media_dir):
    with oss_stack.fleet("oss-replacefleet", VASSET_FFMPEG_READRATE="1") as fleet:
        fleet.start(1)
        replace_walk(oss_stack, oss_stack.api(), media_dir, oss_server)


def test_the_python_sdk_replaces_and_clips(stack, api, media_dir):
    from vasset_client import Client
    from vasset_client.uploader import Uploader

    old = media_dir / "old.mp4"
    vid = api.upload(old.name, old.read_bytes(), PSIZE, auto=1)["vid"]
    wait_status(api, vid, ("playable",))
    assert stack.server is not None
    with Client(stack.server.url, stack.app["app_key"], stack.app["app_secret"]) as client:
        done = Uploader(client, media_dir / "new.mp4", state_dir=None, replace=vid).run()
        assert done.vid == vid
        wait_status(api, vid, ("playable",))
        assert played(api, vid) == NEW
        made = client.clip(vid, [(1000, 2000), (2400, 3000)])
    assert made["source_vid"] == vid and made["status"] == "uploading"
    wait_status(api, made["vid"], ("playable",))
    assert abs(played(api, made["vid"])[0] - 1600) <= 80  # two frames: container rounding
