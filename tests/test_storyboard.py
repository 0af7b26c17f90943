"""Storyboards: tile maths and VTT (pure), the FFmpeg branch on real clips, and end to end.

End to end runs a private deployment (API + a real worker) on local disk and on the OSS test
server: upload -> transcode -> GET /video/storyboard -> the VTT a player fetches, every cue's
sheet, and the errors (unknown vid, another app's vid, a video not transcoded yet, a ladder
made with storyboards off).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.conftest import create_app
from tests.support.api import Api
from tests.support.media_flow import error_of, upload, wait_playable
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.workers import Stack, medium_clip
from vasset.playback import urls
from vasset.playback.storyboard import is_storyboard_vtt
from vasset.transcode import storyboard as sb
from vasset.transcode.commands import build_transcode
from vasset.transcode.ladder import plan_ladder
from vasset.transcode.snapshots import SnapshotRequest

LADDER = "240p,360p"
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


# ---- pure: interval, grid, cues


@pytest.mark.parametrize(
    ("seconds", "interval"),
    [(1, 2), (3, 2), (200, 2), (201, 3), (300, 3), (600, 6), (1000, 10), (3 * 3600, 10)],
)
def test_interval_grows_from_2_to_10_seconds_with_the_duration(seconds, interval):
    assert sb.interval_seconds(seconds * 1000) == interval


def test_tile_size_is_160_wide_even_and_follows_the_display_aspect():
    assert sb.tile_size(1920, 1080) == (160, 90)
    assert sb.tile_size(1080, 1920) == (160, 284)
    assert sb.tile_size(640, 480) == (160, 120)
    assert sb.tile_size(100, 50) == (100, 50)  # never upscaled
    assert sb.tile_size(101, 33) == (100, 32)


def parse_vtt(text: str) -> list[tuple[int, int, str]]:
    """(start_ms, end_ms, payload) of every cue."""
    lines = text.splitlines()
    assert lines[0] == "WEBVTT"
    cues = []
    for i, line in enumerate(lines):
        match = CUE.match(line)
        if match:
            h1, m1, s1, f1, h2, m2, s2, f2 = map(int, match.groups())
            start = ((h1 * 60 + m1) * 60 + s1) * 1000 + f1
            end = ((h2 * 60 + m2) * 60 + s2) * 1000 + f2
            cues.append((start, end, lines[i + 1]))
    return cues


def check_layout(layout: sb.Layout, duration_ms: int) -> None:
    """Cues cover the whole duration; every tile sits inside its sheet; <= 100 tiles a sheet."""
    sheets = {s.name: s for s in layout.sheets()}
    assert all(s.tiles <= 100 for s in sheets.values())
    assert sum(s.tiles for s in sheets.values()) == layout.count
    cues = parse_vtt(sb.vtt_text(layout))
    assert len(cues) == layout.count
    assert cues[0][0] == 0 and cues[-1][1] == duration_ms
    for (_, end, _), (start, _, _) in itertools.pairwise(cues):
        assert end == start
    seen = set()
    for start, end, payload in cues:
        assert 0 < end - start <= layout.interval * 1000
        name, xywh = payload.split("#xywh=")
        x, y, w, h = map(int, xywh.split(","))
        sheet = sheets[name]
        assert (w, h) == (layout.tile_width, layout.tile_height)
        assert x + w <= sheet.width and y + h <= sheet.height
        assert (name, x, y) not in seen
        seen.add((name, x, y))


def test_a_long_video_gets_several_sheets_of_at_most_100_tiles():
    duration = 3600_000 + 1234
    layout = sb.plan_layout(duration, 1920, 1080)
    assert layout is not None
    assert (layout.interval, layout.columns, layout.rows, layout.count) == (10, 10, 10, 361)
    sheets = layout.sheets()
    assert [s.tiles for s in sheets] == [100, 100, 100, 61]
    assert {(s.width, s.height) for s in sheets} == {(1600, 900)}
    check_layout(layout, duration)
    # tile 100 opens the second sheet at its top left
    assert layout.cue(100) == (1000_000, 1010_000, "sheet1.jpg", 0, 0)


@pytest.mark.parametrize("duration", [150, 2000, 3000, 7999, 200_000, 300_000, 301_001, 999_999])
def test_cues_cover_the_duration_for_any_length(duration):
    layout = sb.plan_layout(duration, 1280, 720)
    assert layout is not None
    check_layout(layout, duration)
    # a short video gets a sheet just wide enough for its tiles
    if layout.count <= 10:
        assert (layout.columns, layout.rows) == (layout.count, 1)


def test_a_video_too_short_has_no_storyboard():
    assert sb.plan_layout(99, 1280, 720) is None


def test_vtt_text_is_webvtt_with_relative_sheet_fragments():
    layout = sb.plan_layout(5000, 320, 180)
    assert layout is not None
    assert sb.vtt_text(layout) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.000\nsheet0.jpg#xywh=0,0,160,90\n\n"
        "00:00:02.000 --> 00:00:04.000\nsheet0.jpg#xywh=160,0,160,90\n\n"
        "00:00:04.000 --> 00:00:05.000\nsheet0.jpg#xywh=320,0,160,90\n"
    )


def test_a_storyboard_signature_covers_its_own_folder_only():
    secret, expires = b"k" * 32, 2_000_000_000
    base = "media/7/3-ab12/"
    sig = urls.play_path(secret, base + "storyboard/storyboard.vtt", expires).split("/")[3]
    # the VTT's relative cue URIs resolve under the same signature
    assert urls.verify(secret, base + "storyboard/sheet0.jpg", expires, sig, now=0)
    for other in (
        base + "hls/master.m3u8",
        base + "360p.mp4",
        base + "snapshots/0.jpg",
        base + "storyboardx/sheet0.jpg",
        "media/7/4-ab12/storyboard/sheet0.jpg",  # another attempt
        "media/8/3-ab12/storyboard/sheet0.jpg",  # another video
    ):
        assert not urls.verify(secret, other, expires, sig, now=0), other
    assert is_storyboard_vtt(base + "storyboard/storyboard.vtt")
    assert not is_storyboard_vtt("captions/7/en.vtt")
    assert not is_storyboard_vtt(base + "storyboard/../x.vtt")


# ---- pure: the filter branch of the ladder command


def test_the_storyboard_is_a_branch_of_the_ladder_decode():
    plans = plan_ladder(1280, 720, 0, "360p,720p")
    layout = sb.plan_layout(6000, 1280, 720)
    assert layout is not None
    request = sb.StoryboardRequest(layout=layout, out_dir="/w/storyboard")
    shots = SnapshotRequest(times_ms=[1000], width=640, height=360, out_dir="/w/snapshots")
    cmd = build_transcode(
        "/src/in.mp4",
        plans,
        "/w/out",
        has_audio=True,
        frame_rate=25.0,
        snapshots=shots,
        storyboard=request,
    )
    argv = cmd.argv
    assert argv.count("-i") == 1  # one decode
    graph = argv[argv.index("-filter_complex") + 1].split(";")
    assert graph[0] == "[0:v:0]split=2[c][snap]"
    # the decode's spare pad feeds the storyboard, which hands a copy on to the snapshots
    assert "[snap]split=3[sb_open][sb_all][sb_rest]" in graph
    assert any(g.startswith("[sb_rest]select=") for g in graph)
    assert (
        "[sb_all]fps=fps=1/2:round=up,scale=160:90:flags=bicubic,setsar=1,tile=3x1:color=black[sb_sheets]"
        in graph
    )
    assert cmd.storyboard is not None and "/w/storyboard" in cmd.directories
    assert cmd.storyboard.paths == {"sheet0.jpg": "/w/storyboard/board_0001.jpg"}
    at = argv.index("[sb_out]")
    assert argv[at - 1] == "-map" and argv[-1] == "/w/storyboard/board_%04d.jpg"
    # without snapshots the branch takes the pad itself
    alone = build_transcode(
        "/src/in.mp4", plans, "/w/out", has_audio=False, frame_rate=25.0, storyboard=request
    )
    graph = alone.argv[alone.argv.index("-filter_complex") + 1].split(";")
    assert "[snap]split=2[sb_open][sb_all]" in graph
    assert not any("select=" in g for g in graph)


def ffprobe_size(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    return stream["width"], stream["height"]


def test_real_ffmpeg_writes_every_sheet_from_the_ladder_run(tmp_path_factory, tmp_path):
    """A 3 s clip with 2 tiles a sheet: 2 sheets (the second half empty), from one FFmpeg run."""
    clip = media.landscape(media.shared_dir(tmp_path_factory))  # 320x180, 3 s
    full = sb.plan_layout(3000, 320, 180)
    assert full is not None and full.count == 2
    layout = sb.Layout(
        duration_ms=3000, interval=1, tile_width=160, tile_height=90, columns=2, rows=1, count=3
    )
    request = sb.StoryboardRequest(layout=layout, out_dir=str(tmp_path / "storyboard"))
    cmd = build_transcode(
        clip,
        plan_ladder(320, 180, 0, "240p"),
        tmp_path / "out",
        has_audio=True,
        frame_rate=25.0,
        storyboard=request,
        snapshots=SnapshotRequest(
            times_ms=[500, 1500], width=320, height=180, out_dir=str(tmp_path / "snapshots")
        ),
    )
    cmd.make_directories()
    subprocess.run(cmd.argv, check=True, capture_output=True, timeout=120)
    assert cmd.storyboard is not None
    assert list(cmd.storyboard.paths) == ["sheet0.jpg", "sheet1.jpg"]
    for path in cmd.storyboard.paths.values():
        assert Path(path).read_bytes()[:2] == b"\xff\xd8"
        assert ffprobe_size(Path(path)) == (320, 90)
    # the snapshots still come from the same run
    assert cmd.snapshots is not None and all(Path(p).is_file() for p in cmd.snapshots.paths)


# ---- end to end


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env, tmp_path_factory.mktemp("storyboard"), "storyboard", VASSET_LADDER=LADDER
    ).start()
    yield stack
    stack.stop()


def check_storyboard(api: Api, vid: int, duration_ms: int, presigned: str | None = None) -> dict:
    """The answer's URLs work as a player uses them: the VTT, then each cue's sheet."""
    got = api.call("GET", "/video/storyboard", {"vid": vid})
    assert got.status_code == 200, got.text
    board = got.json()
    assert board["vid"] == vid and board["interval"] == 2
    assert (board["tile_width"], board["tile_height"]) == (160, 90)
    assert board["expires_at"] > time.time() + 3000
    vtt = httpx.get(board["vtt_url"])
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    cues = parse_vtt(vtt.text)
    assert len(cues) == board["tiles"] == 2
    assert cues[0][0] == 0 and cues[-1][1] == duration_ms
    sizes = {}
    for sheet in board["sheets"]:
        assert sheet["expires_at"] == board["expires_at"]
        image = httpx.get(sheet["url"])
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        if presigned:
            assert sheet["url"].startswith(presigned)
    for _, _, payload in cues:
        uri, fragment = payload.split("#")
        assert re.fullmatch(r"xywh=\d+,\d+,160,90", fragment)
        url = urljoin(board["vtt_url"], uri)
        if presigned:
            assert uri.startswith(presigned)  # rewritten into a presigned URL, straight to OSS
        if url not in sizes:
            image = httpx.get(url)
            assert image.status_code == 200, url
            assert image.content[:2] == b"\xff\xd8"
            sizes[url] = len(image.content)
    assert len(sizes) == len(board["sheets"]) == 1
    return board


def test_storyboard_end_to_end_on_local_disk(stack, clips, test_env):
    api = stack.api()
    vid = upload(api, medium_clip(clips), auto=1)  # 640x360, 3 s
    # queued, no worker yet: not transcoded, so no storyboard yet
    error_of(api.call("GET", "/video/storyboard", {"vid": vid}), 409, "VideoNotPlayable")
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        wait_playable(api, vid)
        board = check_storyboard(api, vid, 3000)
        assert board["sheets"][0]["width"] == 320 and board["sheets"][0]["height"] == 90
        # the sheets live beside the renditions, under the attempt's prefix
        key = board["vtt_url"].split("/", 6)[-1]
        assert re.fullmatch(r"media/\d+/\d+-[0-9a-f]+/storyboard/storyboard\.vtt", key), key
        assert (stack.storage / key).is_file()

        # a retranscode replaces the storyboard with the renditions; the old URLs stop working
        r = api.call("POST", "/video/retranscode", {"vid": vid})
        assert r.status_code == 200, r.text
        time.sleep(0.2)
        wait_playable(api, vid)
        again = check_storyboard(api, vid, 3000)
        assert again["vtt_url"].split("/media/")[1] != board["vtt_url"].split("/media/")[1]
        assert httpx.get(board["vtt_url"]).status_code == 404
        assert not (stack.storage / key).exists()

    # storyboards off (VASSET_STORYBOARD=false on the worker): the next ladder has none
    with stack.fleet("off", VASSET_STORYBOARD="false") as fleet:
        fleet.start(1)
        assert api.call("POST", "/video/retranscode", {"vid": vid}).status_code == 200
        time.sleep(0.2)
        wait_playable(api, vid)
        error_of(api.call("GET", "/video/storyboard", {"vid": vid}), 404, "StoryboardNotFound")
        assert httpx.get(again["vtt_url"]).status_code == 404

    # unknown and another app's videos are 404 VideoNotFound (no existence leak)
    error_of(api.call("GET", "/video/storyboard", {"vid": vid + 10_000}), 404, "VideoNotFound")
    other = create_app(stack.env, "other")
    stranger = Api(stack.server.url, other["app_key"], other["app_secret"])
    body = error_of(stranger.call("GET", "/video/storyboard", {"vid": vid}), 404, "VideoNotFound")
    assert body["status"] == "not_found"
    error_of(api.call("GET", "/video/storyboard", {}), 400, "MissingParameter")
    error_of(api.call("GET", "/video/storyboard", {"vid": "x"}), 400, "InvalidParameter")


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env, tmp_path / "oss", f"sboss{os.getpid()}", oss_server.endpoint, VASSET_LADDER=LADDER
    )


def test_storyboard_end_to_end_on_oss(oss_stack, oss_server, clips):
    api = oss_stack.api()
    with oss_stack.fleet("oss-fleet") as fleet:
        fleet.start(1)
        vid = upload(api, medium_clip(clips), auto=1)
        wait_playable(api, vid)
    board = check_storyboard(api, vid, 3000, presigned=oss_server.endpoint)
    # the VTT comes through the API (it is rewritten); the sheets straight from OSS
    assert board["vtt_url"].startswith(oss_stack.server.url + "/play/")
    stored = set(oss_server.object_keys())
    sheet_keys = [k for k in stored if re.search(rf"^vasset/media/{vid}/.*/storyboard/", k)]
    assert sorted(k.rsplit("/", 1)[1] for k in sheet_keys) == ["sheet0.jpg", "storyboard.vtt"]
