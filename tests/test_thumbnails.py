"""GET /video/thumbnail end to end (API + worker, local disk and the OSS test server)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests import media
from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.stack import Stack
from vasset import errors
from vasset.playback.thumbnails import (
    Thumbnails,
    build_thumbnail,
    pick_rendition,
    seek_time,
    thumbnail_height,
)


def clip(directory: Path) -> Path:
    """640x360, 4 s, H.264 + AAC."""
    return media._cached(directory, "thumb_src.mp4", lambda p: media._av_clip(p, "640x360", 4))


@pytest.fixture(scope="module", params=["local", "oss"])
def stack(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"thumbs-{request.param}")
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
    s = Stack(root, **env).start()
    s.kind = request.param
    s.oss = oss
    s.vid = s.upload(clip(root / "media"))["vid"]
    status = s.wait(s.vid)
    assert status["status"] == "playable", status
    yield s
    s.stop()
    if oss is not None:
        oss.close()


def probe(data: bytes, tmp: Path) -> dict:
    """Codec, width and height of an image, read by ffprobe."""
    path = tmp / "probe.img"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    stream = json.loads(out.stdout)["streams"][0]
    return {"codec": stream["codec_name"], "width": stream["width"], "height": stream["height"]}


def thumb(stack, **params):
    return stack.api.call("GET", "/video/thumbnail", {"vid": stack.vid, **params})


def key_of(url: str) -> str:
    """The object key part of a signed or presigned URL."""
    return "media/" + url.split("?")[0].split("/media/", 1)[1]


def made_lines(stack, key_part: str) -> int:
    """How many thumbnail_made log lines of the API name key_part."""
    log = (stack.root / "api.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "thumbnail_made" in line and key_part in line)


@pytest.mark.parametrize(
    ("time_ms", "width", "fmt", "codec"),
    [(0, 320, "jpg", "mjpeg"), (1500, 160, "webp", "webp"), (3900, 1280, "jpg", "mjpeg")],
)
def test_thumbnail_image_and_cache(stack, tmp_path, time_ms, width, fmt, codec):
    r = thumb(stack, time=time_ms, width=width, format=fmt)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["vid"] == stack.vid and answer["format"] == fmt
    assert (answer["width"], answer["height"]) == (width, width * 9 // 16)
    assert answer["time"] == min(time_ms, 4000 - 250)
    assert answer["expires_at"] > time.time()
    got = httpx.get(answer["url"])
    assert got.status_code == 200
    assert got.headers["content-type"] == ("image/jpeg" if fmt == "jpg" else "image/webp")
    assert probe(got.content, tmp_path) == {
        "codec": codec,
        "width": width,
        "height": width * 9 // 16,
    }
    name = f"thumbs/{answer['time']}-{width}.{fmt}"
    assert name in answer["url"]
    assert made_lines(stack, name) == 1
    if stack.kind == "oss":
        stored = [k for k in stack.oss.object_keys() if k.endswith(name)]
        assert len(stored) == 1
    else:
        stored = list((stack.root / "storage").rglob(name.replace("thumbs/", "")))
        assert len(stored) == 1
        mtime = stored[0].stat().st_mtime_ns
    # a second request is served from storage: no FFmpeg run, the same object
    again = thumb(stack, time=time_ms, width=width, format=fmt)
    assert again.status_code == 200
    assert key_of(again.json()["url"]) == key_of(answer["url"])
    assert made_lines(stack, name) == 1
    if stack.kind == "local":
        assert stored[0].stat().st_mtime_ns == mtime
    assert httpx.get(again.json()["url"]).content == got.content


def test_default_width_is_the_widest_rendition(stack):
    answer = thumb(stack).json()
    assert (answer["time"], answer["width"], answer["height"], answer["format"]) == (
        0,
        640,
        360,
        "jpg",
    )


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"time": 4001}, "time"),
        ({"time": -1}, "time"),
        ({"time": "soon"}, "time"),
        ({"width": 31}, "width"),
        ({"width": 1922}, "width"),
        ({"width": 321}, "width"),
        ({"format": "png"}, "format"),
    ],
)
def test_bad_input_names_the_parameter(stack, params, parameter):
    r = thumb(stack, **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameter" and body["parameter"] == parameter


def test_other_apps_video_and_unplayable(stack):
    created = json.loads(stack._run("apps", "create", "other", "--json"))
    stranger = Api(stack.api.base_url, created["app_key"], created["app_secret"])
    r = stranger.call("GET", "/video/thumbnail", {"vid": stack.vid})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    r = stack.api.call("GET", "/video/thumbnail", {"vid": 10**12})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    pending = stack.upload(clip(stack.root / "media"), auto=False, with_hash=False)
    r = stack.api.call("GET", "/video/thumbnail", {"vid": pending["vid"]})
    assert r.status_code == 409 and r.json()["code"] == "VideoNotPlayable"


def test_retranscode_makes_new_thumbnails(stack):
    if stack.kind == "oss":
        pytest.skip("the rendition swap is the same code on both stores; once is enough")
    first = thumb(stack, time=1000, width=64).json()
    key_of = first["url"].split("/media/", 1)[1]
    r = stack.api.call("POST", "/video/retranscode", {"vid": stack.vid})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = thumb(stack, time=1000, width=64)
        if answer.status_code == 200 and answer.json()["url"].split("/media/", 1)[1] != key_of:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the thumbnail never moved to the new rendition set")
    new = answer.json()["url"].split("/media/", 1)[1]
    assert new.split("/")[1] != key_of.split("/")[1]  # another attempt prefix
    assert made_lines(stack, new.split("?")[0]) == 1
    assert httpx.get(answer.json()["url"]).status_code == 200


# pure parts


def test_argv_is_pure_and_whitelisted():
    argv = build_thumbnail(
        "/x/360p.mp4", "/t/o.webp", seek_ms=1500, width=320, height=180, fmt="webp"
    )
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv.index("-ss") < argv.index("-i") and argv[argv.index("-ss") + 1] == "1.500"
    assert "libwebp" in argv and argv[-1] == "/t/o.webp"
    remote = build_thumbnail(
        "http://h/k", "/t/o.jpg", seek_ms=0, width=32, height=18, fmt="jpg", remote=True
    )
    assert remote[remote.index("-protocol_whitelist") + 1] == "http,https,tcp,tls"
    with pytest.raises(ValueError):
        build_thumbnail("/x", "/t/o.png", seek_ms=0, width=32, height=18, fmt="png")


def test_sizes_times_and_rendition_choice():
    assert thumbnail_height(320, 640, 360) == 180
    assert thumbnail_height(33 * 2, 1080, 1920) == 118
    assert seek_time(5000, 4000) == 3750 and seek_time(0, 100) == 0
    assert pick_rendition([], 320) is None


async def test_beyond_the_cap_is_503_with_retry_after(tmp_path):
    settings = SimpleNamespace(thumbnail_concurrency=1, thumbnail_timeout=20.0, temp_dir=tmp_path)
    thumbnails = Thumbnails(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    facts = {"time": 0, "width": 64, "height": 36, "format": "jpg"}
    thumbnails._slots = asyncio.Semaphore(1)
    async with thumbnails._slots:  # what a make in flight holds
        with pytest.raises(errors.ThumbnailUnavailable) as refused:
            await thumbnails._make(1, "media/1/1-a/360p.mp4", "k", 0, facts)
    assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "1"}
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
