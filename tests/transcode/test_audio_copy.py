"""Audio passthrough: every rendition copies the source's AAC-LC when it already fits them all."""

from __future__ import annotations

import json
import subprocess

import msgspec
import pytest

from tests import media
from tests.transcode.test_passthrough import phone_clip
from vasset.transcode.audio import AudioRequest
from vasset.transcode.commands import build_transcode
from vasset.transcode.ladder import plan_ladder
from vasset.transcode.passthrough import audio_copy
from vasset.transcode.probe import probe


def plans_for(info):
    return plan_ladder(
        info.width,
        info.height,
        info.rotation,
        "360p,720p",
        source_video_bitrate=info.video_bitrate_estimate,
        source_audio_bitrate=info.audio_bitrate,
    )


def stereo(**changes):
    return msgspec.structs.replace(
        phone_clip(audio_channels=2, audio_sample_rate=48000, audio_bitrate=64_000), **changes
    )


def test_copied_when_aac_lc_stereo_within_every_rung():
    info = stereo()
    assert audio_copy(info, plans_for(info)) == 64_000
    mono = stereo(audio_channels=1, audio_sample_rate=44100)
    assert audio_copy(mono, plans_for(mono)) == 64_000


@pytest.mark.parametrize(
    "changes",
    [
        {"audio_codec": "mp3"},
        {"audio_profile": "HE-AAC"},
        {"audio_channels": 6},
        {"audio_channels": None},
        {"audio_sample_rate": 22050},
        {"audio_bitrate": None},
    ],
)
def test_re_encoded_otherwise(changes):
    info = stereo(**changes)
    assert audio_copy(info, plans_for(info)) is None


def test_re_encoded_when_a_rung_asks_for_less_than_the_source():
    info = stereo(audio_bitrate=256_000)
    plans = [msgspec.structs.replace(p, audio_bitrate=96_000) for p in plans_for(info)]
    assert audio_copy(info, plans) is None


def test_every_output_copies_the_audio(tmp_path):
    info = stereo()
    plans = plans_for(info)
    cmd = build_transcode(
        "/src/in.mp4",
        plans,
        tmp_path,
        has_audio=True,
        frame_rate=30.0,
        audio_only=AudioRequest(out_dir=str(tmp_path), bitrate=64_000, copy=True),
        audio_copy=64_000,
    )
    argv = cmd.argv
    codecs = [argv[i + 1] for i, a in enumerate(argv) if a == "-c:a"]
    assert codecs == ["copy"] * (len(plans) + 1)
    assert "-ar" not in argv and "-b:a" not in argv
    assert all(o.bandwidth > 0 for o in cmd.outputs)


def test_real_ffmpeg_copies_the_source_audio_bit_for_bit(tmp_path_factory, tmp_path):
    clip = media.landscape(media.shared_dir(tmp_path_factory))
    info = probe(clip)
    copied = audio_copy(info, plans_for(info))
    assert copied == info.audio_bitrate  # the generated clips carry AAC-LC
    plans = plans_for(info)
    cmd = build_transcode(
        clip,
        plans,
        tmp_path / "out",
        has_audio=True,
        frame_rate=info.frame_rate,
        demuxer=info.demuxer,
        audio_copy=copied,
    )
    cmd.make_directories()
    subprocess.run(cmd.argv, check=True, capture_output=True)

    def audio_md5(path) -> str:
        out = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-i",
                str(path),
                "-map",
                "0:a:0",
                "-c",
                "copy",
                "-f",
                "md5",
                "-",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    for output in cmd.outputs:
        assert audio_md5(output.mp4_path) == audio_md5(clip)
    streams = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=codec_name,profile",
            "-of",
            "json",
            cmd.outputs[0].mp4_path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(streams)["streams"] == [{"codec_name": "aac", "profile": "LC"}]
