"""HEVC and AV1 renditions: the pure argv and levels, then real FFmpeg runs checked with ffprobe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import media
from vasset.transcode import codecs
from vasset.transcode.commands import build_transcode, master_playlist
from vasset.transcode.ladder import plan_ladder
from vasset.transcode.outputs import verify_outputs


def tiny(directory: Path) -> Path:
    """2 s of 320x240 with audio: x265 and SVT-AV1 are slow, so the clip stays tiny."""
    return media._cached(directory, "tiny-320x240.mp4", lambda p: media._av_clip(p, "320x240", 2))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return tiny(media.shared_dir(tmp_path_factory))


def ffprobe(path: str | Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def box(path: str | Path, kind: bytes) -> bytes:
    """Payload of the first box of this type anywhere in the file (sample entries nest it)."""
    data = Path(path).read_bytes()
    at = data.index(kind)
    size = int.from_bytes(data[at - 4 : at], "big")
    return data[at + 4 : at - 4 + size]


def hvcc_codecs(payload: bytes) -> str:
    """RFC 6381 string of an hvcC box, the way browsers read it."""
    profile_idc = payload[1] & 0x1F
    tier = "H" if payload[1] & 0x20 else "L"
    compat = int.from_bytes(payload[2:6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = payload[6:12].rstrip(b"\0")
    level = payload[12]
    parts = [f"hvc1.{profile_idc}", f"{reversed_compat:x}", f"{tier}{level}"]
    parts += [f"{b:02X}" for b in constraints]
    return ".".join(parts)


def av1c_codecs(payload: bytes) -> str:
    """RFC 6381-style string of an av1C box (av01.profile.levelTier.depth)."""
    profile, level = payload[1] >> 5, payload[1] & 0x1F
    tier = "H" if payload[2] & 0x80 else "M"
    depth = 10 if payload[2] & 0x40 else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


# pure


def test_variants_keep_the_h264_ladder_and_scale_rates():
    plans = plan_ladder(1280, 720, 0, "360p,720p")
    assert codecs.with_variants(plans, None) == plans
    assert codecs.with_variants(plans, "h264") == plans
    both = codecs.with_variants(plans, "hevc")
    assert [p.name for p in both] == ["360p", "720p", "360p-hevc", "720p-hevc"]
    assert [p.codec for p in both] == ["h264", "h264", "hevc", "hevc"]
    for h264, hevc in zip(both[:2], both[2:], strict=True):
        assert (hevc.width, hevc.height) == (h264.width, h264.height)
        assert hevc.max_rate == round(h264.max_rate * codecs.EFFICIENCY["hevc"])
        assert hevc.video_bitrate < h264.video_bitrate
    assert [p.name for p in codecs.with_variants(plans, "av1")][2:] == ["360p-av1", "720p-av1"]
    with pytest.raises(ValueError):
        codecs.with_variants(plans, "vp9")


@pytest.mark.parametrize(
    ("w", "h", "fps", "rate", "name", "idc"),
    [
        (320, 240, 25, 500_000, "2", 60),
        (640, 360, 30, 560_000, "2.1", 63),
        (854, 480, 30, 980_000, "3", 90),
        (1280, 720, 30, 2_000_000, "3.1", 93),
        (1920, 1080, 30, 3_700_000, "4", 120),
        (1920, 1080, 60, 3_700_000, "4.1", 123),
        (3840, 2160, 30, 11_000_000, "5", 150),
        (320, 240, 25, 2_000_000, "2.1", 63),  # the bit rate alone lifts the level
    ],
)
def test_hevc_level(w, h, fps, rate, name, idc):
    assert codecs.hevc_level(w, h, fps, rate) == (name, idc)


@pytest.mark.parametrize(
    ("w", "h", "fps", "name", "idx"),
    [
        (320, 240, 25, "2.0", 0),
        (640, 360, 30, "2.1", 1),
        (1280, 720, 30, "3.1", 5),
        (1920, 1080, 30, "4.0", 8),
        (1920, 1080, 60, "4.1", 9),
        (3840, 2160, 30, "5.0", 12),
    ],
)
def test_av1_level(w, h, fps, name, idx):
    assert codecs.av1_level(w, h, fps, 1_000_000) == (name, idx)


def test_codecs_strings():
    assert codecs.codecs_string("hevc", 93, has_audio=True) == "hvc1.1.6.L93.90,mp4a.40.2"
    assert codecs.codecs_string("av1", 5, has_audio=False) == "av01.0.05M.08"
    with pytest.raises(ValueError):
        codecs.codecs_string("h264", 31, has_audio=False)


def test_argv_names_the_encoders_tags_and_clock(tmp_path):
    plans = codecs.with_variants(plan_ladder(320, 240, 0, "240p"), "hevc")
    plans += codecs.with_variants(plan_ladder(320, 240, 0, "240p"), "av1")[1:]
    cmd = build_transcode("in.mp4", plans, tmp_path, has_audio=True, frame_rate=25)
    argv = " ".join(cmd.argv)
    assert argv.count("-c:v libx264") == 1
    assert "-c:v libx265 -preset superfast -profile:v main -tag:v hvc1" in argv
    assert "level-idc=2:scenecut=0:open-gop=0:keyint=50:min-keyint=50" in argv
    assert "-c:v libsvtav1 -preset 10" in argv
    assert "-svtav1-params:v level=20" in argv
    # Same key-frame clock for every encoder, so HLS segments line up across variants.
    assert argv.count("-force_key_frames:v expr:gte(t,n_forced*2)") == 3
    assert argv.count("-flags:v +global_header") == 2
    by_name = {o.name: o for o in cmd.outputs}
    assert by_name["240p-hevc"].codecs == "hvc1.1.6.L60.90,mp4a.40.2"
    assert by_name["240p-av1"].codecs == "av01.0.00M.08,mp4a.40.2"
    assert by_name["240p"].codecs.startswith("avc1.")
    master = master_playlist(cmd.outputs)
    assert 'CODECS="hvc1.1.6.L60.90,mp4a.40.2"' in master
    assert 'CODECS="av01.0.00M.08,mp4a.40.2"' in master
    assert "240p-hevc/index.m3u8" in master and "240p-av1/index.m3u8" in master


# real FFmpeg


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_ffmpeg_writes_playable_variants_whose_boxes_match_codecs(clip, tmp_path, codec):
    plans = codecs.with_variants(plan_ladder(320, 240, 0, "240p"), codec)
    cmd = build_transcode(
        clip, plans, tmp_path / "out", has_audio=True, frame_rate=25, hls_time=1, gop_seconds=1
    )
    cmd.make_directories()
    subprocess.run(cmd.argv, check=True, capture_output=True, timeout=300)
    verify_outputs(cmd)
    out = {o.name: o for o in cmd.outputs}[f"240p-{codec}"]
    info = ffprobe(out.mp4_path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == codec
    assert (video["width"], video["height"], video["pix_fmt"]) == (320, 240, "yuv420p")
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.2)
    init = Path(out.hls_dir or "") / "init.mp4"
    if codec == "hevc":
        assert video["codec_tag_string"] == "hvc1"
        for path in (out.mp4_path, init):
            assert hvcc_codecs(box(path, b"hvcC")) == out.codecs.split(",")[0]
    else:
        for path in (out.mp4_path, init):
            assert av1c_codecs(box(path, b"av1C")) == out.codecs.split(",")[0]
    # Every segment decodes, and the variant is cut on the shared 1 s key-frame clock.
    playlist = Path(out.hls_playlist or "").read_text()
    assert playlist.count("#EXTINF:1.0") == 2
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", out.hls_playlist or "", "-f", "null", "-"],
        capture_output=True,
        timeout=120,
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip()
