"""Passthrough: the top rendition remuxes the source exactly when the source already fits it."""

from __future__ import annotations

import msgspec
import pytest

from vasset.transcode.commands import build_transcode, master_playlist
from vasset.transcode.ladder import plan_ladder
from vasset.transcode.passthrough import choose_passthrough, refusal
from vasset.transcode.probe import MediaInfo

MOV = "mov,mp4,m4a,3gp,3g2,mj2"


def phone_clip(**changes) -> MediaInfo:
    """A 1080p H.264 High 4.0 yuv420p clip at 4 Mbit/s with 2 s GOPs and AAC-LC audio."""
    info = MediaInfo(
        format="MPEG-4",
        demuxer=MOV,
        duration_ms=20_000,
        width=1920,
        height=1080,
        rotation=0,
        sample_aspect=1.0,
        video_codec="h264",
        audio_codec="aac",
        bitrate=4_200_000,
        video_bitrate=4_000_000,
        audio_bitrate=128_000,
        frame_rate=30.0,
        variable_frame_rate=False,
        has_video=True,
        has_audio=True,
        file_size=10_500_000,
        video_stream=0,
        audio_stream=1,
        pix_fmt="yuv420p",
        video_profile="High",
        video_level=40,
        audio_profile="LC",
        keyframe_interval=2.0,
    )
    return msgspec.structs.replace(info, **changes)


def plans_for(info: MediaInfo, ladder: str = "360p,480p,720p,1080p"):
    return plan_ladder(
        info.width,
        info.height,
        info.rotation,
        ladder,
        sample_aspect=info.sample_aspect,
        source_video_bitrate=info.video_bitrate_estimate,
        source_audio_bitrate=info.audio_bitrate,
    )


def choose(info: MediaInfo, ladder: str = "360p,480p,720p,1080p"):
    return choose_passthrough(info, plans_for(info, ladder), max_keyframe_interval=4)


def test_a_fitting_source_passes_its_top_rendition_through():
    info = phone_clip()
    chosen = choose(info)
    assert chosen is not None
    assert chosen.name == "1080p" and chosen.copy_audio is True
    assert chosen.codecs_video == "avc1.640028" and chosen.level == "4.0"
    assert chosen.video_bitrate == 4_000_000 and chosen.audio_bitrate == 128_000
    # Main and Constrained Baseline are as playable; keyframes exactly at the limit still fit.
    assert choose(phone_clip(video_profile="Main", video_level=31)).codecs_video == "avc1.4d401f"
    assert choose(phone_clip(video_profile="Constrained Baseline")) is not None
    assert choose(phone_clip(keyframe_interval=4.0)) is not None
    # No video bitrate in the container: the file's minus the audio's is used.
    assert choose(phone_clip(video_bitrate=None)) is not None


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"video_codec": "hevc"}, "codec hevc"),
        ({"width": 1921}, "odd size"),
        ({"height": 1081, "width": 1920}, "odd size"),
        ({"pix_fmt": "yuv422p"}, "pixel format yuv422p"),
        ({"pix_fmt": "yuv420p10le", "video_profile": "High 10"}, "profile High 10"),
        ({"keyframe_interval": 10.0}, "key frames every 10.0 s"),
        ({"keyframe_interval": None}, "key frames every None s"),
        ({"video_bitrate": 12_000_000, "bitrate": 12_200_000}, "over the cap"),
        ({"rotation": 90}, "rotation"),
        ({"sample_aspect": 4 / 3}, "non-square"),
        ({"frame_rate": 120.0}, "frame rate"),
        ({"video_level": None}, "unknown level"),
    ],
)
def test_passthrough_is_refused_when_the_source_does_not_fit(changes, why):
    info = phone_clip(**changes)
    assert choose(info) is None
    reason = refusal(info, plans_for(info)[-1], max_keyframe_interval=4)
    assert reason is not None and why in reason


def test_only_a_rendition_at_the_source_size_passes_through():
    # The top rung (720p) is smaller than the 1080p source: it must be scaled, so re-encoded.
    assert choose(phone_clip(), "360p,720p") is None
    assert "size differs" in (refusal(phone_clip(), plans_for(phone_clip(), "720p")[-1],
                                      max_keyframe_interval=4) or "")  # fmt: skip
    # A 1072-line source keeps the 1080p name at its own size: that is the source, so it fits.
    assert choose(phone_clip(height=1072)) is not None


def test_audio_is_copied_only_when_it_is_aac_lc():
    assert choose(phone_clip(audio_profile="HE-AAC")).copy_audio is False
    assert choose(phone_clip(audio_codec="mp3", audio_profile=None)).copy_audio is False


def value_after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_argv_copies_the_source_stream_for_the_passthrough_rendition():
    info = phone_clip()
    plans = plans_for(info)
    chosen = choose(info)
    cmd = build_transcode(
        "/src/in.mp4", plans, "/out", has_audio=True, frame_rate=30.0, demuxer=MOV,
        video_stream=0, audio_stream=1, passthrough=chosen,
    )  # fmt: skip
    argv = cmd.argv
    # Three encoders, one copy; the copy maps the source's stream, not a filter pad.
    assert value_after(argv, "-c:v") == ["libx264"] * 3 + ["copy"]
    assert value_after(argv, "-map")[::2] == ["[v0]", "[v1]", "[v2]", "0:0"]
    assert value_after(argv, "-c:a") == ["aac"] * 3 + ["copy"]
    (graph,) = value_after(argv, "-filter_complex")
    # Nothing scales to 1080p: the largest encoded rendition scales from the decode.
    assert "1920:1080" not in graph
    assert graph.split(";")[:2] == [
        "[0:0]null[c]",
        "[c]scale=1280:720:flags=lanczos,setsar=1,split=2[v2][c2]",
    ]
    top = cmd.outputs[-1]
    assert top.passthrough and not any(o.passthrough for o in cmd.outputs[:-1])
    assert top.codecs == "avc1.640028,mp4a.40.2" and top.level == "4.0"
    assert top.video_bitrate == 4_000_000 and top.audio_bitrate == 128_000
    assert f'CODECS="{top.codecs}"' in master_playlist(cmd.outputs)
    # HLS is still written for it, through the same tee.
    assert top.hls_playlist == "/out/hls/1080p/index.m3u8"


def test_argv_of_a_lone_passthrough_without_snapshots_has_no_filtergraph():
    info = phone_clip()
    plans = plans_for(info, "1080p")
    cmd = build_transcode(
        "/in.mp4",
        plans,
        "/out",
        has_audio=False,
        frame_rate=30.0,
        passthrough=choose(info, "1080p"),
    )
    assert "-filter_complex" not in cmd.argv
    assert value_after(cmd.argv, "-c:v") == ["copy"] and "-an" in cmd.argv
    with pytest.raises(ValueError):
        build_transcode("/in.mp4", plans_for(info, "720p"), "/out", has_audio=False,
                        frame_rate=30.0, passthrough=choose(info))  # fmt: skip
