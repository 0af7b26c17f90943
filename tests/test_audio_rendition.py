"""The audio-only rendition: command building (pure), a real FFmpeg run, and end to end.

End to end: upload -> transcode -> playurl format=m4a (an AAC M4A) and the audio-only HLS
variant in the master, on local disk and on the OSS test server; a source without audio answers
404 AudioNotFound; a video not transcoded yet 409 VideoNotPlayable.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.media_flow import error_of, upload, wait_playable
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.workers import Stack, medium_clip
from vasset.transcode import audio
from vasset.transcode.commands import build_transcode, master_playlist
from vasset.transcode.ladder import plan_ladder
from vasset.transcode.outputs import mp4_boxes

LADDER = "240p,360p"


def value_after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def build(has_audio=True, hls=True, **kw):
    plans = plan_ladder(1280, 720, 0, "360p,720p")
    request = audio.AudioRequest(out_dir="/w/out", bitrate=128_000, hls=hls, hls_time=4)
    return build_transcode(
        "/src/in.mp4",
        plans,
        "/w/out",
        has_audio=has_audio,
        frame_rate=25.0,
        hls=hls,
        audio_only=request,
        **kw,
    )


# ---- pure


def test_the_audio_rendition_is_one_more_output_of_the_ladder_run():
    cmd = build(audio_stream=1)
    argv = cmd.argv
    assert argv.count("-i") == 1
    # the renditions' audio and the audio-only output map the same probed stream
    assert value_after(argv, "-map").count("0:1") == 3
    tee = argv[-1]  # the audio-only output comes last
    m4a, hls = tee.split("|")
    assert m4a == "[f=ipod:movflags=+faststart:onfail=abort]/w/out/audio.m4a"
    assert hls.startswith("[f=hls:onfail=abort:hls_time=4:hls_playlist_type=vod:")
    assert hls.endswith("]/w/out/hls/audio/index.m3u8")
    at = argv.index("-vn")
    assert argv[at : at + 9] == ["-vn", "-c:a", "aac", "-b:a", "128000", "-ac", "2", "-ar", "48000"]
    assert cmd.audio is not None and cmd.audio.hls_dir == "/w/out/hls/audio"
    assert "/w/out/hls/audio" in cmd.directories


def test_no_audio_in_the_source_means_no_audio_rendition():
    cmd = build(has_audio=False)
    assert cmd.audio is None and "-vn" not in cmd.argv
    assert "audio.m4a" not in " ".join(cmd.argv)


def test_without_hls_only_the_m4a_is_written():
    cmd = build(hls=False)
    assert cmd.audio is not None and cmd.audio.hls_playlist is None
    assert cmd.argv[-1] == ("[f=ipod:movflags=+faststart:onfail=abort]/w/out/audio.m4a")


def test_master_lists_the_audio_only_variant_last():
    cmd = build()
    text = master_playlist(cmd.outputs, audio=cmd.audio)
    lines = text.splitlines()
    assert lines[-2:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=140800,AVERAGE-BANDWIDTH=128000,CODECS="mp4a.40.2"',
        "audio/index.m3u8",
    ]
    # players start on the first variant listed: it has video
    first = next(line for line in lines if line.startswith("#EXT-X-STREAM-INF"))
    assert "RESOLUTION=" in first and "avc1" in first
    assert master_playlist(cmd.outputs) == text.replace(
        "\n".join(lines[-2:]) + "\n", ""
    )  # without audio: as before


def test_real_ffmpeg_writes_a_faststart_m4a_and_an_audio_hls_variant(tmp_path_factory, tmp_path):
    clip = media.landscape(media.shared_dir(tmp_path_factory))  # 320x180, 3 s, AAC
    cmd = build_transcode(
        clip,
        plan_ladder(320, 180, 0, "240p"),
        tmp_path / "out",
        has_audio=True,
        frame_rate=25.0,
        audio_only=audio.AudioRequest(out_dir=str(tmp_path / "out"), hls_time=2),
    )
    cmd.make_directories()
    subprocess.run(cmd.argv, check=True, capture_output=True, timeout=120)
    assert cmd.audio is not None
    boxes = mp4_boxes(cmd.audio.m4a_path)
    assert boxes.index("moov") < boxes.index("mdat")
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", cmd.audio.m4a_path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert [(s["codec_type"], s["codec_name"]) for s in probe["streams"]] == [("audio", "aac")]
    assert probe["streams"][0]["channels"] == 2
    assert cmd.audio.hls_playlist is not None
    playlist = Path(cmd.audio.hls_playlist).read_text()
    assert "#EXT-X-ENDLIST" in playlist and "#EXT-X-PLAYLIST-TYPE:VOD" in playlist


# ---- end to end


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("audio"), "audio", VASSET_LADDER=LADDER)
    stack.start()
    yield stack
    stack.stop()


def check_audio(api: Api, vid: int, tmp_path: Path, presigned: str | None = None) -> None:
    """playurl format=m4a gives one AAC M4A; the HLS master ends with a playable audio variant."""
    r = api.call("GET", "/video/playurl", {"vid": vid, "format": "m4a"})
    assert r.status_code == 200, r.text
    (entry,) = r.json()["play_urls"]
    assert (entry["definition"], entry["format"], entry["width"], entry["height"]) == (
        "audio",
        "m4a",
        None,
        None,
    )
    assert entry["bitrate"] > 0 and entry["size"] > 0
    if presigned:
        assert entry["url"].startswith(presigned)
    got = httpx.get(entry["url"])
    assert got.status_code == 200 and len(got.content) == entry["size"]
    path = tmp_path / f"{vid}.m4a"
    path.write_bytes(got.content)
    assert mp4_boxes(path).index("moov") < mp4_boxes(path).index("mdat")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert [s["codec_type"] for s in json.loads(out)["streams"]] == ["audio"]
    # a definition other than "audio" matches nothing
    r = api.call("GET", "/video/playurl", {"vid": vid, "format": "m4a", "definition": "360p"})
    error_of(r, 409, "VideoNotPlayable")
    # the default answer keeps listing only video renditions and the master
    every = api.call("GET", "/video/playurl", {"vid": vid}).json()["play_urls"]
    assert {u["format"] for u in every} == {"mp4", "hls"}
    master_url = next(u["url"] for u in every if u["format"] == "hls")
    master = httpx.get(master_url).text.splitlines()
    assert master[-1] == "audio/index.m3u8" and 'CODECS="mp4a.40.2"' in master[-2]
    playlist = httpx.get(urljoin(master_url, "audio/index.m3u8"))
    assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
    uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
    uris += [x.split('URI="')[1].split('"')[0] for x in playlist.text.splitlines() if 'URI="' in x]
    assert len(uris) >= 2
    for uri in uris:
        if presigned:
            assert uri.startswith(presigned)
        assert httpx.get(urljoin(str(playlist.url), uri)).status_code == 200


def test_audio_rendition_end_to_end_on_local_disk(stack, clips, tmp_path):
    api = stack.api()
    vid = upload(api, medium_clip(clips), auto=1)
    silent = upload(api, media.no_audio(clips), auto=1)
    # queued, no worker yet: nothing playable
    error_of(
        api.call("GET", "/video/playurl", {"vid": vid, "format": "m4a"}), 409, "VideoNotPlayable"
    )
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        wait_playable(api, vid)
        wait_playable(api, silent)
    check_audio(api, vid, tmp_path)
    info = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert [r["format"] for r in info["renditions"]].count("m4a") == 1
    # no audio in the source: no audio rendition, a clear 404, and no audio variant
    body = error_of(
        api.call("GET", "/video/playurl", {"vid": silent, "format": "m4a"}), 404, "AudioNotFound"
    )
    assert "audio" in body["message"]
    every = api.call("GET", "/video/playurl", {"vid": silent}).json()["play_urls"]
    master_url = next(u["url"] for u in every if u["format"] == "hls")
    assert "mp4a" not in httpx.get(master_url).text
    error_of(
        api.call("GET", "/video/playurl", {"vid": vid, "format": "m4b"}), 400, "InvalidParameter"
    )
    error_of(
        api.call("GET", "/video/playurl", {"vid": vid + 10_000, "format": "m4a"}),
        404,
        "VideoNotFound",
    )


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env, tmp_path / "oss", f"auoss{os.getpid()}", oss_server.endpoint, VASSET_LADDER=LADDER
    )


def test_audio_rendition_end_to_end_on_oss(oss_stack, oss_server, clips, tmp_path):
    api = oss_stack.api()
    with oss_stack.fleet("oss-fleet") as fleet:
        fleet.start(1)
        vid = upload(api, medium_clip(clips), auto=1)
        wait_playable(api, vid)
    check_audio(api, vid, tmp_path, presigned=oss_server.endpoint)
    stored = set(oss_server.object_keys())
    assert any(k.startswith(f"vasset/media/{vid}/") and k.endswith("/audio.m4a") for k in stored)


@pytest.mark.parametrize("how", ["template", "parameters"])
def test_audio_rendition_and_storyboard_can_be_turned_off(stack, clips, how):
    """TranscodeOptions.audio / .storyboard (from a template or the call) override defaults."""
    api = stack.api()
    off = {"audio": 0, "storyboard": 0}
    if how == "template":
        r = api.call("POST", "/video/templates", {"name": "bare", **off})
        assert r.status_code == 200, r.text
        asked = {"template": "bare"}
    else:
        asked = off
    vid = upload(api, medium_clip(clips))
    r = api.call("POST", "/video/transcode", {"vid": vid, **asked})
    assert r.status_code == 200, r.text
    with stack.fleet(f"bare-{how}") as fleet:
        fleet.start(1)
        wait_playable(api, vid)
    error_of(api.call("GET", "/video/playurl", {"vid": vid, "format": "m4a"}), 404, "AudioNotFound")
    error_of(api.call("GET", "/video/storyboard", {"vid": vid}), 404, "StoryboardNotFound")
    every = api.call("GET", "/video/playurl", {"vid": vid}).json()["play_urls"]
    master_url = next(u["url"] for u in every if u["format"] == "hls")
    assert 'mp4a.40.2"\n' not in httpx.get(master_url).text  # no audio-only variant
    assert "audio/index.m3u8" not in httpx.get(master_url).text
