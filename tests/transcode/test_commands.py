"""Command building: argv shape, whitelists, HLS layout, master playlist, snapshots."""

from __future__ import annotations

import pytest

from vasset.transcode.commands import (
    VIDEO_DEMUXERS,
    build_snapshots,
    build_transcode,
    codecs_string,
    h264_level,
    input_args,
    master_playlist,
    snapshot_times,
)
from vasset.transcode.ladder import plan_ladder

MOV = "mov,mp4,m4a,3gp,3g2,mj2"


def value_after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def build(**kw):
    plans = plan_ladder(1920, 1080, 0)
    args = {"has_audio": True, "frame_rate": 25.0, "demuxer": MOV}
    args.update(kw)
    return build_transcode("/src/in.mp4", plans, "/out", **args)


def test_transcode_argv_is_one_decode_with_split():
    cmd = build()
    argv = cmd.argv
    assert argv[0] == "ffmpeg"
    for flag in ("-nostdin", "-hide_banner", "-y", "-nostats"):
        assert flag in argv
    assert value_after(argv, "-progress") == ["pipe:1"]
    # Exactly one input, read with whitelists and the probed demuxer pinned.
    assert value_after(argv, "-i") == ["/src/in.mp4"]
    assert value_after(argv, "-protocol_whitelist") == ["file"]
    (formats,) = value_after(argv, "-format_whitelist")
    assert "hls" not in formats.split(",") and "concat" not in formats.split(",")
    assert set(VIDEO_DEMUXERS) == set(formats.split(","))
    assert value_after(argv, "-f")[0] == "mov"
    assert argv.index("-format_whitelist") < argv.index("-i")
    (graph,) = value_after(argv, "-filter_complex")
    # One decode; each rendition is scaled from the nearest larger one (a chain, largest first).
    assert graph.split(";") == [
        "[0:v:0]null[c]",
        "[c]scale=1920:1080:flags=lanczos,setsar=1,split=2[v3][c3]",
        "[c3]scale=1280:720:flags=lanczos,setsar=1,split=2[v2][c2]",
        "[c2]scale=854:480:flags=lanczos,setsar=1,split=2[v1][c1]",
        "[c1]scale=640:360:flags=lanczos,setsar=1[v0]",
    ]
    assert value_after(argv, "-map")[::2] == ["[v0]", "[v1]", "[v2]", "[v3]"]
    assert value_after(argv, "-map").count("0:a:0?") == 4
    assert value_after(argv, "-c:v") == ["libx264"] * 4
    assert value_after(argv, "-profile:v") == ["high"] * 4
    assert value_after(argv, "-pix_fmt") == ["yuv420p"] * 4
    assert value_after(argv, "-sc_threshold:v") == ["0"] * 4
    assert value_after(argv, "-g:v") == ["50"] * 4
    assert value_after(argv, "-c:a") == ["aac"] * 4
    assert value_after(argv, "-preset") == ["veryfast"] * 4


def test_key_frames_on_a_clock_with_an_optional_early_one():
    assert value_after(build().argv, "-force_key_frames:v") == ["expr:gte(t,n_forced*2)"] * 4
    early = build(first_keyframe=1, hls_time=1, hls_playlist_type="event").argv
    clock = "expr:gte(t,if(eq(n_forced,0),0,1+(n_forced-1)*2))"
    assert value_after(early, "-force_key_frames:v") == [clock] * 4
    hls = [a for a in early if "f=hls" in a]
    assert len(hls) == 4 and all("hls_time=1:" in a for a in hls)


def test_transcode_outputs_tee_mp4_and_hls():
    cmd = build(hls_segment_type="mpegts", preset="medium", threads=2)
    tees = value_after(cmd.argv, "-f")[1:]
    assert tees == ["tee"] * 4
    slaves = [
        cmd.argv[i + 2] for i, a in enumerate(cmd.argv) if a == "-f" and cmd.argv[i + 1] == "tee"
    ]
    first = slaves[0].split("|")
    assert first[0] == "[f=mp4:movflags=+faststart:onfail=abort]/out/360p.mp4"
    assert first[1].startswith("[f=hls:onfail=abort:hls_time=4:hls_playlist_type=vod:")
    assert "hls_segment_type=mpegts" in first[1]
    assert "hls_segment_filename=/out/hls/360p/seg_%05d.ts" in first[1]
    assert first[1].endswith("]/out/hls/360p/index.m3u8")
    assert value_after(cmd.argv, "-preset") == ["medium"] * 4
    assert value_after(cmd.argv, "-threads:v") == ["2"] * 4
    assert cmd.master_path == "/out/hls/master.m3u8"
    assert cmd.directories == ["/out", "/out/hls"] + [
        f"/out/hls/{n}" for n in ("360p", "480p", "720p", "1080p")
    ]
    assert [o.mp4_path for o in cmd.outputs] == [
        f"/out/{n}.mp4" for n in ("360p", "480p", "720p", "1080p")
    ]


def test_transcode_without_audio_or_hls():
    cmd = build(has_audio=False, hls=False)
    assert "0:a:0?" not in cmd.argv
    assert "-c:a" not in cmd.argv
    assert cmd.argv.count("-an") == 4
    assert cmd.master_path is None
    assert cmd.directories == ["/out"]
    assert all(o.hls_playlist is None and o.audio_bitrate == 0 for o in cmd.outputs)
    assert all(o.codecs.startswith("avc1.") and "mp4a" not in o.codecs for o in cmd.outputs)
    slaves = [
        cmd.argv[i + 2] for i, a in enumerate(cmd.argv) if a == "-f" and cmd.argv[i + 1] == "tee"
    ]
    assert all("|" not in s for s in slaves)


def test_transcode_caps_frame_rate_and_rejects_reserved_paths():
    cmd = build(frame_rate=120.0)
    (graph,) = value_after(cmd.argv, "-filter_complex")
    # The frame rate is capped once, before the chain, not once per rendition.
    assert graph.startswith("[0:v:0]fps=60,null[c];") and graph.count("fps=") == 1
    with pytest.raises(ValueError):
        build_transcode("/in.mp4", plan_ladder(640, 360, 0), "/out:x", has_audio=True,
                        frame_rate=25)  # fmt: skip
    with pytest.raises(ValueError):
        build(hls_segment_type="dash")
    with pytest.raises(ValueError):
        build_transcode("/in.mp4", [], "/out", has_audio=True, frame_rate=25)


def test_explicit_stream_indexes():
    cmd = build(video_stream=1, audio_stream=0)
    (graph,) = value_after(cmd.argv, "-filter_complex")
    assert graph.startswith("[0:1]null[c];")
    assert value_after(cmd.argv, "-map").count("0:0") == 4
    snaps = build_snapshots("/in.mp4", "/s", [1, 2], width=2, height=2, video_stream=1)
    assert value_after(snaps.argv, "-map") == ["0:1", "1:1"]


def test_input_args_without_demuxer():
    args = input_args("/a.mkv")
    assert "-f" not in args and args[-2:] == ["-i", "/a.mkv"]
    assert input_args("/a.mkv", demuxer="matroska,webm")[-4:] == ["-f", "matroska", "-i", "/a.mkv"]


@pytest.mark.parametrize(
    ("w", "h", "fps", "level"),
    [
        (640, 360, 30, "3.0"),
        (854, 480, 25, "3.0"),
        (854, 480, 30, "3.1"),
        (1280, 720, 30, "3.1"),
        (1280, 720, 60, "3.2"),
        (1920, 1080, 30, "4.0"),
        (1920, 1080, 60, "4.2"),
        (3840, 2160, 30, "5.1"),
    ],
)
def test_h264_level(w, h, fps, level):
    assert h264_level(w, h, fps) == level


def test_codecs_string():
    assert codecs_string("4.0", has_audio=True) == "avc1.640028,mp4a.40.2"
    assert codecs_string("3.1", has_audio=False) == "avc1.64001f"


def test_master_playlist():
    cmd = build()
    text = master_playlist(cmd.outputs)
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    infs = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    uris = [line for line in lines if line and not line.startswith("#")]
    assert uris == [f"{n}/index.m3u8" for n in ("360p", "480p", "720p", "1080p")]
    assert 'RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2"' in infs[-1]
    bandwidths = [int(i.split("BANDWIDTH=")[1].split(",")[0]) for i in infs]
    assert bandwidths == sorted(bandwidths)
    # Peak bandwidth covers max rate plus audio.
    out = cmd.outputs[-1]
    assert bandwidths[-1] >= out.max_rate + out.audio_bitrate
    assert text.endswith("\n")
    with pytest.raises(ValueError):
        master_playlist(build(hls=False).outputs)


def test_snapshot_times():
    assert snapshot_times(10_000, 10) == [500, 1500, 2500, 3500, 4500, 5500, 6500, 7500, 8500, 9500]
    assert snapshot_times(3000, 1) == [1500]
    assert snapshot_times(0, 10) == [] and snapshot_times(1000, 0) == []


def test_snapshot_argv_fast_seek_per_input():
    cmd = build_snapshots("/in.mp4", "/snap", [500, 1500, 2500], width=720, height=1280,
                          demuxer=MOV)  # fmt: skip
    argv = cmd.argv
    assert value_after(argv, "-ss") == ["0.500", "1.500", "2.500"]
    assert value_after(argv, "-i") == ["/in.mp4"] * 3
    # -ss precedes its -i: input seeking (fast), not output seeking.
    for i, ss in enumerate(j for j, a in enumerate(argv) if a == "-ss"):
        assert argv.index("-i", ss) < [j for j, a in enumerate(argv) if a == "-map"][i]
    assert value_after(argv, "-map") == ["0:v:0", "1:v:0", "2:v:0"]
    assert value_after(argv, "-frames:v") == ["1"] * 3
    assert value_after(argv, "-vf") == ["scale=720:1280:flags=bicubic,setsar=1"] * 3
    assert value_after(argv, "-protocol_whitelist") == ["file"] * 3
    assert value_after(argv, "-threads") == ["1"] * 3
    assert cmd.paths == [f"/snap/snapshot_{i:02d}.jpg" for i in range(3)]
    assert (cmd.width, cmd.height) == (720, 1280)
    with pytest.raises(ValueError):
        build_snapshots("/in.mp4", "/snap", [], width=2, height=2)
