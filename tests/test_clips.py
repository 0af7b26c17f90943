"""Clips end to end: POST /video/clip through a real API, worker and FFmpeg, on local disk and OSS.

The clip's own source (the object the clip job stores, before its ladder) is decoded and its
frames compared with the source's: the frame after every cut must be the source frame at the
range's start, and the duration must be the ranges' sum within one frame.
"""

from __future__ import annotations

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
from vasset.clips import commands
from vasset.clips.ranges import MAX_RANGES, Range, parse_ranges

FPS = 25
FRAME_MS = 1000 // FPS
RAW = ("-f", "rawvideo", "-")
NULL = ("-f", "null", "-")
SMALL = {"VASSET_LADDER": "240p", "VASSET_IMAGE_COUNT": "1"}


# ---- generated media (a 1 s GOP, so cuts on whole seconds are on key frames)


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clipmedia")
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    gop = ["-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    aac = ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}", *tone, "-t", "6",
            *x264, *gop, *aac, d / "main.mp4")  # fmt: skip
    # intro: larger, another aspect and frame rate, no audio
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x480:rate=30", "-t", "2", *x264, d / "intro.mp4")
    # outro: portrait, with audio
    _ffmpeg("-f", "lavfi", "-i", f"smptebars=size=180x320:rate={FPS}", *tone, "-t", "1",
            *x264, *aac, d / "outro.mp4")  # fmt: skip
    return d


def frames(path: Path) -> list[bytes]:
    """Every frame as 64x36 grey bytes."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-vf",
            "scale=64:36:flags=area,format=gray",
            *RAW,
        ],
        capture_output=True,
        check=True,
    ).stdout
    return [raw[i : i + 64 * 36] for i in range(0, len(raw), 64 * 36)]


def nearest(frame: bytes, source: list[bytes]) -> int:
    """Index of the source frame closest to frame (mean absolute difference)."""
    diffs = [sum(abs(a - b) for a, b in zip(frame, s, strict=True)) for s in source]
    return min(range(len(diffs)), key=diffs.__getitem__)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return json.loads(out)


def assert_cuts_match(clip: Path, source: Path, ranges: list[Range], lead_frames: int = 0) -> None:
    """The clip's frame at each range start is that source frame; its length is the sum."""
    got, src = frames(clip), frames(source)
    want = lead_frames + sum(r.duration_ms for r in ranges) // FRAME_MS
    assert abs(len(got) - want) <= 1, (len(got), want)
    at = lead_frames
    for r in ranges:
        assert nearest(got[at], src) == r.start_ms // FRAME_MS, (r, at)
        last = at + r.duration_ms // FRAME_MS - 1
        assert nearest(got[last], src) == r.end_ms // FRAME_MS - 1, (r, last)
        at = last + 1


# ---- the API and workers


def wait_status(api: Api, vid: int, until=("playable",), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = api.call("GET", "/video/status", {"vid": vid}).json()
        if st["status"] in until:
            return st
        assert st["status"] not in ("upload_failed", "transcode_failed"), st
        time.sleep(0.1)
    raise AssertionError(f"video {vid} is still {st['status']}")


def upload(api: Api, path: Path, auto: int = 1) -> int:
    data = path.read_bytes()
    done = api.upload(path.name, data, max(len(data), 100 * 1024), auto=auto)
    assert done["status"] == "uploaded", done
    return done["vid"]


def source_key(env: dict, vid: int) -> str:
    return sql(env, "SELECT storage_uri FROM video WHERE id = :v", v=vid)[0][0]


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("clips"), "clips", **SMALL).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def fleet(stack):
    with stack.fleet("clipfleet") as fleet:
        fleet.start(1)
        yield fleet


@pytest.fixture(scope="module")
def api(stack, fleet) -> Api:
    return stack.api()


@pytest.fixture(scope="module")
def videos(api, media_dir) -> dict[str, int]:
    """main, intro and outro, playable (their durations known)."""
    found = {name: upload(api, media_dir / f"{name}.mp4") for name in ("main", "intro", "outro")}
    for vid in found.values():
        wait_status(api, vid)
    return found


def clip(api: Api, vid: int, ranges: str, **extra):
    return api.call("POST", "/video/clip", {"vid": vid, "ranges": ranges, **extra})


def made(fleet, vid: int) -> dict:
    events = [e for e in fleet.events("clip_source_made") if e["vid"] == vid]
    assert len(events) == 1, events
    return events[0]


def test_two_ranges_on_key_frames_are_copied_frame_exactly(stack, fleet, api, videos, media_dir):
    r = clip(api, videos["main"], "1000-2000,3000-5000")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source_vid"] == videos["main"] and body["status"] == "uploading"
    wait_status(api, body["vid"])
    assert made(fleet, body["vid"])["mode"] == "copy"
    stored = stack.storage / source_key(stack.env, body["vid"])
    assert_cuts_match(stored, media_dir / "main.mp4", parse_ranges("1000-2000,3000-5000"))
    # the clip is a video of its own: played through its own renditions
    play = api.call("GET", "/video/playurl", {"vid": body["vid"]}).json()
    assert play["play_urls"] and abs(play["duration"] - 3000) <= FRAME_MS


def test_cuts_off_key_frames_are_re_encoded_frame_exactly(stack, fleet, api, videos, media_dir):
    ranges = "3000-4520,1040-2000"  # any order: the clip follows it
    r = clip(api, videos["main"], ranges)
    assert r.status_code == 200, r.text
    vid = r.json()["vid"]
    wait_status(api, vid)
    assert made(fleet, vid)["mode"] == "reencode"
    stored = stack.storage / source_key(stack.env, vid)
    assert_cuts_match(stored, media_dir / "main.mp4", parse_ranges(ranges))


def test_intro_and_outro_are_fitted_to_the_main_size_with_silence(
    stack, fleet, api, videos, media_dir
):
    r = clip(api, videos["main"], "2000-4000", intro=videos["intro"], outro=videos["outro"])
    assert r.status_code == 200, r.text
    vid = r.json()["vid"]
    wait_status(api, vid)
    stored = stack.storage / source_key(stack.env, vid)
    info = ffprobe(stored)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert (video["width"], video["height"]) == (320, 180)
    assert video["r_frame_rate"] == f"{FPS}/1"
    assert len(audio) == 1  # the intro had none: silence fills it
    assert abs(float(info["format"]["duration"]) - 5.0) <= 2 * FRAME_MS / 1000
    # the main range sits after the 2 s intro, frame-exact
    got, src = frames(stored), frames(media_dir / "main.mp4")
    assert nearest(got[2 * FPS], src) == 2 * FPS
    assert nearest(got[4 * FPS - 1], src) == 4 * FPS - 1
    # the intro's 4:3 picture is pillarboxed: the left and right edges are black
    first = got[0]
    edge = [first[row * 64 + col] for row in range(36) for col in (0, 1, 62, 63)]
    assert max(edge) < 30, edge
    # the intro's audio is silence, the main's is the tone
    loud = subprocess.run(
        ["ffmpeg", "-v", "info", "-i", str(stored), "-af", "atrim=0:1.5,volumedetect", *NULL],
        capture_output=True,
        text=True,
    ).stderr
    assert "max_volume: -91" in loud or "max_volume: -inf" in loud, loud[-400:]


@pytest.mark.parametrize(
    ("ranges", "code"),
    [
        ("1000-9000", "ClipRangeOutOfBounds"),
        ("1000-3000,2000-4000", "ClipRangesOverlap"),
        ("3000-1000", "ClipRangeReversed"),
        ("1000-1000", "ClipRangeEmpty"),
        ("1000-2000,", "ClipRangesMalformed"),
        ("1s-2s", "ClipRangesMalformed"),
        ("-1000-2000", "ClipRangesMalformed"),
        ("１000-2000", "ClipRangesMalformed"),
        (",".join(f"{i * 100}-{i * 100 + 50}" for i in range(MAX_RANGES + 1)), "ClipTooManyRanges"),
    ],
)
def test_bad_ranges_are_refused_and_make_nothing(stack, api, videos, ranges, code):
    before = sql(stack.env, "SELECT COUNT(*) FROM video")[0][0]
    r = clip(api, videos["main"], ranges)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code, r.text
    assert sql(stack.env, "SELECT COUNT(*) FROM video")[0][0] == before


def test_other_apps_videos_and_unfinished_sources_are_refused(stack, api, videos, media_dir):
    other = json.loads(stack.cli("apps", "create", "other", "--json"))
    assert stack.server is not None
    theirs = Api(stack.server.url, other["app_key"], other["app_secret"])
    their_vid = upload(theirs, media_dir / "outro.mp4", auto=0)
    before = sql(stack.env, "SELECT COUNT(*) FROM video")[0][0]
    for extra in ({"intro": their_vid}, {"outro": their_vid}):
        r = clip(api, videos["main"], "1000-2000", **extra)
        assert (r.status_code, r.json()["code"]) == (404, "VideoNotFound"), r.text
    r = clip(api, their_vid, "0-500")
    assert (r.status_code, r.json()["code"]) == (404, "VideoNotFound"), r.text
    # a source still uploading
    data = (media_dir / "main.mp4").read_bytes()
    init = api.init("main.mp4", data, max(len(data), 100 * 1024), with_hash=False).json()
    assert init["status"] == "uploading", init
    r = clip(api, init["vid"], "0-500")
    assert (r.status_code, r.json()["code"]) == (409, "InvalidState"), r.text
    r = clip(api, videos["main"], "0-500", intro=init["vid"])
    assert (r.status_code, r.json()["code"]) == (409, "InvalidState"), r.text
    assert sql(stack.env, "SELECT COUNT(*) FROM video")[0][0] == before + 1  # the init's own


def test_argv_is_pure_and_copies_only_on_key_frames():
    ranges = parse_ranges("1000-2000,3000-5000")
    script = commands.concat_list("/s/it's.mp4", ranges)
    assert "file '/s/it'\\''s.mp4'" in script and "inpoint 3.000" in script
    argv = commands.copy_argv(Path("/w/c.ffconcat"), "mov,mp4,m4a", Path("/w/o.mp4"), True)
    assert argv[argv.index("-format_whitelist") + 1] == "concat,mov"
    assert argv[argv.index("-c") + 1] == "copy"
    from vasset.clips.ranges import on_keyframes

    keys = [0, 1000, 2000, 3000, 4000, 5000]
    assert on_keyframes(ranges, keys, 6000, 20)
    assert not on_keyframes(parse_ranges("1040-2000"), keys, 6000, 20)
    assert on_keyframes(parse_ranges("5000-5990"), keys, 6000, 20)  # to the end


# ---- the same on the OSS test server


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env, tmp_path / "oss", f"cliposs{os.getpid()}", oss_server.endpoint, **SMALL
    )


def test_clips_on_oss(oss_stack, oss_server, media_dir, tmp_path):
    api = oss_stack.api()
    with oss_stack.fleet("oss-clipfleet") as fleet:
        fleet.start(1)
        main = upload(api, media_dir / "main.mp4")
        intro = upload(api, media_dir / "intro.mp4")
        wait_status(api, main)
        wait_status(api, intro)
        copied = clip(api, main, "1000-2000,3000-5000").json()["vid"]
        fitted = clip(api, main, "1040-2000", intro=intro).json()["vid"]
        wait_status(api, copied)
        wait_status(api, fitted)
        assert made(fleet, copied)["mode"] == "copy"
        assert made(fleet, fitted)["mode"] == "reencode"
    got = tmp_path / "copied.mp4"
    got.write_bytes(oss_server.get_bytes("vasset/" + source_key(oss_stack.env, copied)))
    assert_cuts_match(got, media_dir / "main.mp4", parse_ranges("1000-2000,3000-5000"))
    got = tmp_path / "fitted.mp4"
    got.write_bytes(oss_server.get_bytes("vasset/" + source_key(oss_stack.env, fitted)))
    assert_cuts_match(got, media_dir / "main.mp4", parse_ranges("1040-2000"), lead_frames=2 * FPS)
    play = api.call("GET", "/video/playurl", {"vid": fitted}).json()
    assert play["play_urls"][0]["url"].startswith(oss_server.endpoint)
