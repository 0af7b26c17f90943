"""The cheaper ladder through a real API and `vasset worker`: passthrough, caps, snapshots, HLS.

Sources are small generated H.264 clips whose size, bitrate and GOP decide what the worker may
do: one fits its top rendition (remuxed, packet for packet), one has a low bitrate and sparse key
frames (re-encoded, and no rendition may come out above the source's bitrate).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.workers import Stack

LADDER = "240p,360p"
IMAGE_COUNT = 3


def _h264_clip(out: Path, *, bitrate: str, gop: int) -> None:
    """640x360, 4 s, 25 fps, High-profile H.264 held near bitrate by VBV, AAC-LC 64 kbit/s."""
    args = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"]
    args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p"]
    args += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-g", str(gop)]
    args += ["-keyint_min", str(gop), "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k"]
    media._ffmpeg([*args, "-shortest", out])


def fitting_clip(directory: Path) -> Path:
    """Fits a 360p passthrough: 500 kbit/s (under 360p's cap), key frames every second."""
    return media._cached(
        directory, "ladder_fits_360p.mp4", lambda p: _h264_clip(p, bitrate="500k", gop=25)
    )


def starved_clip(directory: Path) -> Path:
    """300 kbit/s with one key frame: below the 360p rung's 800 kbit/s, too sparse to remux."""
    return media._cached(
        directory, "ladder_starved_360p.mp4", lambda p: _h264_clip(p, bitrate="300k", gop=250)
    )


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("ladder"),
        "ladder",
        VASSET_LADDER=LADDER,
        VASSET_IMAGE_COUNT=str(IMAGE_COUNT),
    ).start()
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        yield stack
    stack.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def transcode(stack: Stack, path: Path) -> int:
    """Upload with auto=1 and wait until playable; returns the vid."""
    api: Api = stack.api()
    data = path.read_bytes()
    done = api.upload(path.name, data, max(len(data), 100 * 1024), auto=1)
    vid = done["vid"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        answer = api.call("GET", "/video/status", {"vid": vid}).json()
        # Progressive HLS makes a video playable early; the job's end is the ladder's end.
        jobs = sql(stack.env, "SELECT state FROM transcode_job WHERE video_id = :v", v=vid)
        if jobs and jobs[-1][0] == "succeeded" and answer["status"] == "playable":
            return vid
        assert answer["status"] != "transcode_failed", answer
        time.sleep(0.1)
    raise AssertionError(f"video {vid} not transcoded: {answer}")


def renditions(stack: Stack, vid: int, fmt: str) -> dict[str, dict]:
    rows = sql(
        stack.env,
        "SELECT definition, storage_uri, media_info FROM video"
        " WHERE parent_id = :v AND deleted_at IS NULL AND format = :f",
        v=vid,
        f=fmt,
    )
    return {d: {"path": stack.storage / key, "info": json.loads(info)} for d, key, info in rows}


def ffprobe(path: Path, *extra: str) -> dict:
    argv = ["ffprobe", "-v", "error", "-protocol_whitelist", "file", *extra, "-of", "json"]
    out = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def video_stream(path: Path) -> dict:
    data = ffprobe(path, "-count_packets", "-show_streams", "-show_format")
    (video,) = [s for s in data["streams"] if s["codec_type"] == "video"]
    return {**video, "format_bit_rate": int(data["format"]["bit_rate"])}


def packets_md5(path: Path) -> str:
    """MD5 of the video stream's packets (the bytes a decoder gets), whatever the container."""
    argv = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy"]
    out = subprocess.run([*argv, "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def assert_hls_plays(stack: Stack, vid: int, definitions: set[str]) -> None:
    """The master lists every variant, and each variant playlist decodes to the end."""
    ((details,),) = sql(stack.env, "SELECT media_info FROM video WHERE id = :v", v=vid)
    master = stack.storage / json.loads(details)["hls_master"]
    programs = ffprobe(master, "-show_programs")["programs"]
    heights = sorted(
        s["height"] for p in programs for s in p["streams"] if s.get("codec_type") == "video"
    )
    hls = renditions(stack, vid, "hls")
    assert set(hls) == definitions
    assert heights == sorted(int(d[:-1]) for d in definitions)
    for name, row in hls.items():
        playlist = row["path"]
        assert "#EXT-X-ENDLIST" in playlist.read_text(), name
        argv = ["ffmpeg", "-v", "error", "-protocol_whitelist", "file", "-i", str(playlist)]
        done = subprocess.run([*argv, "-f", "null", "-"], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stderr.strip(), (name, done.stderr)
        duration = float(ffprobe(playlist, "-show_format")["format"]["duration"])
        assert abs(duration - 4.0) < 0.2, (name, duration)


def assert_snapshots(stack: Stack, vid: int) -> None:
    rows = sql(
        stack.env,
        "SELECT image_index, width, height, storage_uri FROM video_snapshot WHERE video_id = :v"
        " ORDER BY image_index",
        v=vid,
    )
    assert [r[0] for r in rows] == list(range(IMAGE_COUNT))
    for _, width, height, key in rows:
        probed = ffprobe(stack.storage / key, "-show_streams")["streams"][0]
        assert (probed["codec_name"], probed["width"], probed["height"]) == ("mjpeg", width, height)
        assert (width, height) == (640, 360)


def test_a_fitting_source_is_remuxed_into_its_top_rendition(stack, clips):
    source = fitting_clip(clips)
    vid = transcode(stack, source)
    mp4 = renditions(stack, vid, "mp4")
    assert set(mp4) == {"240p", "360p"}
    top, low = mp4["360p"], mp4["240p"]
    assert top["info"]["passthrough"] is True and low["info"]["passthrough"] is False
    # A stream copy: the very same video packets, as many, over the same duration.
    src, out = video_stream(source), video_stream(top["path"])
    assert out["nb_read_packets"] == src["nb_read_packets"]
    assert abs(float(out["duration"]) - float(src["duration"])) < 0.05
    assert packets_md5(top["path"]) == packets_md5(source)
    assert (out["profile"], out["width"], out["height"]) == ("High", 640, 360)
    assert top["info"]["codecs"].startswith("avc1.64")
    # The smaller rendition was encoded (x264 writes Main/High with its own packets).
    assert packets_md5(low["path"]) != packets_md5(source)
    assert (video_stream(low["path"])["height"]) == 240
    assert_hls_plays(stack, vid, {"240p", "360p"})
    assert_snapshots(stack, vid)


def test_a_low_bitrate_source_gets_no_rendition_above_its_bitrate(stack, clips):
    source = starved_clip(clips)
    vid = transcode(stack, source)
    mp4 = renditions(stack, vid, "mp4")
    assert set(mp4) == {"240p", "360p"}
    src = video_stream(source)
    for name, row in mp4.items():
        # Sparse key frames: nothing may be remuxed, every rendition is a new encode.
        assert row["info"]["passthrough"] is False, name
        out = video_stream(row["path"])
        # Without the cap, 360p would ask for 800 kbit/s from a 300 kbit/s source.
        assert int(out["bit_rate"]) <= int(src["bit_rate"]), (name, out["bit_rate"])
        assert out["format_bit_rate"] <= src["format_bit_rate"], name
        assert row["path"].stat().st_size <= source.stat().st_size, name
    assert_hls_plays(stack, vid, {"240p", "360p"})
    assert_snapshots(stack, vid)
