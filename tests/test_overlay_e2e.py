"""Watermark and text end to end: PUT the PNG, transcode with overlays, play the renditions.

Real API, `vasset worker` processes and FFmpeg, on local disk and on the OSS test server. The
source is a grey clip with a little noise (a flat one encodes to a few kbit/s, and the ladder
caps renditions by the source's bitrate), so what the overlays change is measurable: the
watermark's corner turns white in every rendition (scaled with it) and the rest of the picture
stays grey; the text shows in its corner only between text_start and text_end.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.media_flow import upload
from tests.support.workers import Stack
from vasset import errors

LADDER = "240p,360p"
TERMINAL = {"playable", "transcode_failed"}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("overlay-media")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=0x808080:s=640x360:r=25:d=3,noise=alls=12:allf=t+u",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-shortest",
            str(d / "grey.mp4"),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=white:s=100x50",
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgba",
            str(d / "wm.png"),
        ],
        check=True,
    )
    return d


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("overlay"), "overlay", VASSET_LADDER=LADDER)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env, tmp_path / "oss", f"ovoss{os.getpid()}", oss_server.endpoint, VASSET_LADDER=LADDER
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def put_watermark(api: Api, path: Path) -> int:
    r = api.call("PUT", "/video/assets", {"kind": "watermark"}, content=path.read_bytes())
    assert r.status_code == 200, r.text
    return r.json()["asset_id"]


def wait_done(api: Api, vid: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = api.call("GET", "/video/status", {"vid": vid}).json()
        if st["status"] in TERMINAL:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.2)


def gray_frame(path: Path, at: float) -> tuple[int, int, bytes]:
    """(width, height, 8-bit luma) of the frame at `at` seconds."""
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    width, height = (int(v) for v in probe.split(","))
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-ss",
            f"{at}",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    assert len(raw) == width * height
    return width, height, raw


def region(frame: tuple[int, int, bytes], x0: float, y0: float, x1: float, y1: float) -> list[int]:
    """Luma values of a box given in fractions of the frame."""
    width, height, raw = frame
    xs = range(int(x0 * width), int(x1 * width))
    return [raw[y * width + x] for y in range(int(y0 * height), int(y1 * height)) for x in xs]


def mean(values: list[int]) -> float:
    return sum(values) / len(values)


def bright(values: list[int]) -> int:
    """How many pixels are near white (the noisy grey source has none)."""
    return sum(v > 200 for v in values)


def renditions(api: Api, vid: int, tmp: Path) -> dict[str, Path]:
    """Every MP4 rendition, downloaded through its play URL (local /play or presigned OSS)."""
    pu = api.call("GET", "/video/playurl", {"vid": vid}).json()
    assert any(u["format"] == "hls" for u in pu["play_urls"]), pu
    files = {}
    for u in pu["play_urls"]:
        if u["format"] == "mp4":
            target = tmp / f"{vid}-{u['definition']}.mp4"
            target.write_bytes(httpx.get(u["url"], timeout=60).content)
            files[u["definition"]] = target
    return files


def check_overlays(api: Api, vid: int, tmp: Path) -> None:
    files = renditions(api, vid, tmp)
    assert sorted(files) == ["240p", "360p"]
    for name, path in files.items():
        shown = gray_frame(path, 1.0)
        later = gray_frame(path, 2.6)
        # top-left: the opaque white watermark, 25 % of the width (so 1/8 of the height here)
        for frame in (shown, later):
            assert mean(region(frame, 0.02, 0.03, 0.22, 0.10)) > 225, name
            # the middle is the untouched grey source
            assert abs(mean(region(frame, 0.35, 0.35, 0.65, 0.65)) - 128) < 12, name
        # bottom-right: white text while shown (0-1.5 s), none after
        assert bright(region(shown, 0.5, 0.75, 1.0, 1.0)) > 200, name
        assert bright(region(later, 0.5, 0.75, 1.0, 1.0)) < 5, name


OVERLAYS = {
    "wm_position": "top-left",
    "wm_margin": "0",
    "wm_scale": "0.25",
    "text": b64("你好，世界 'a:b', [c]; %{pts}"),
    "text_position": "bottom-right",
    "text_size": "0.12",
    "text_start": "0",
    "text_end": "1500",
}


def test_watermark_and_text_on_local_disk(stack, media_dir, tmp_path):
    api = stack.api()
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        asset = put_watermark(api, media_dir / "wm.png")
        vid = upload(api, media_dir / "grey.mp4")
        r = api.call("POST", "/video/transcode", {"vid": vid, "watermark": asset, **OVERLAYS})
        assert r.status_code == 200, r.text
        st = wait_done(api, vid)
        assert st["status"] == "playable", st
        check_overlays(api, vid, tmp_path)
        # a retranscode without overlays replaces them with the clean picture
        assert api.call("POST", "/video/retranscode", {"vid": vid}).status_code == 200
        assert wait_done(api, vid)["status"] == "playable"
        (tmp_path / "plain").mkdir()
        plain = gray_frame(renditions(api, vid, tmp_path / "plain")["360p"], 1.0)
        assert abs(mean(region(plain, 0.02, 0.03, 0.22, 0.10)) - 128) < 12


def test_an_asset_deleted_before_the_job_runs_fails_it_cleanly(stack, media_dir):
    api = stack.api()
    asset = put_watermark(api, media_dir / "wm.png")
    vid = upload(api, media_dir / "grey.mp4")
    r = api.call("POST", "/video/transcode", {"vid": vid, "watermark": asset})
    assert r.status_code == 200, r.text
    assert api.call("POST", "/video/assets/delete", {"asset_id": asset}).status_code == 200
    with stack.fleet("fleet-deleted") as fleet:
        fleet.start(1)
        st = wait_done(api, vid)
    assert st["status"] == "transcode_failed"
    assert st["error"].startswith(errors.AssetNotFound.code + ":"), st


def test_text_without_the_font_fails_the_job_with_font_missing(stack, media_dir):
    api = stack.api()
    vid = upload(api, media_dir / "grey.mp4")
    r = api.call("POST", "/video/transcode", {"vid": vid, "text": b64("hello")})
    assert r.status_code == 200, r.text
    with stack.fleet("fleet-nofont", VASSET_FONT_FILE="/nonexistent/font.ttc") as fleet:
        fleet.start(1)
        st = wait_done(api, vid)
    assert st["status"] == "transcode_failed"
    assert st["error"].startswith(str(errors.FailureCode.FONT_MISSING) + ":"), st


def test_watermark_and_text_on_oss(oss_stack, oss_server, media_dir, tmp_path):
    api = oss_stack.api()
    with oss_stack.fleet("oss-fleet") as fleet:
        fleet.start(1)
        before = set(oss_server.object_keys())
        asset = put_watermark(api, media_dir / "wm.png")
        stored = [k for k in set(oss_server.object_keys()) - before if "/assets/" in k]
        assert len(stored) == 1 and stored[0].startswith("vasset/assets/")
        vid = upload(api, media_dir / "grey.mp4")
        r = api.call("POST", "/video/transcode", {"vid": vid, "watermark": asset, **OVERLAYS})
        assert r.status_code == 200, r.text
        assert wait_done(api, vid)["status"] == "playable"
    check_overlays(api, vid, tmp_path)
    assert api.call("POST", "/video/assets/delete", {"asset_id": asset}).status_code == 200
    assert stored[0] not in oss_server.object_keys()
