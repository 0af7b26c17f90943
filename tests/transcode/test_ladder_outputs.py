"""Bitrate caps by the source's bitrate and snapshots taken from the ladder's own decode (argv)."""

from __future__ import annotations

import pytest

from vasset.transcode.commands import build_transcode
from vasset.transcode.ladder import DEFINITIONS, cap_to_source, plan_ladder
from vasset.transcode.snapshots import SnapshotRequest, snapshot_outputs


def value_after(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_a_low_bitrate_source_caps_every_rendition_by_its_pixel_share():
    # The new user's case: a 2.8 Mbit/s 720p source, whose 720p rung also asks 2.8 Mbit/s.
    plans = plan_ladder(1280, 720, 0, "360p,480p,720p", source_video_bitrate=2_800_000,
                        source_audio_bitrate=64_000)  # fmt: skip
    top = plans[-1]
    assert top.max_rate <= 2_800_000 and top.video_bitrate < top.max_rate
    assert top.buffer_size <= top.video_bitrate * 3 // 2
    for plan in plans:
        share = plan.width * plan.height / (1280 * 720)
        assert plan.max_rate <= max(2_800_000 * share, DEFINITIONS[plan.name].video_bitrate / 4)
        assert plan.video_bitrate <= plan.max_rate <= DEFINITIONS[plan.name].max_rate
        # Audio never above the source's (64 kbit/s is also the floor).
        assert plan.audio_bitrate == 64_000


def test_a_rich_source_keeps_the_rung_budgets():
    capped = plan_ladder(
        1920, 1080, 0, source_video_bitrate=12_000_000, source_audio_bitrate=320_000
    )
    assert capped == plan_ladder(1920, 1080, 0)


def test_the_cap_has_a_floor_but_never_exceeds_the_source():
    plan = plan_ladder(1920, 1080, 0, "360p")[0]
    # 1 Mbit/s 1080p: 360p's pixel share would be 111 kbit/s; the floor keeps a quarter of the rung.
    floor = cap_to_source(plan, 1920 * 1080, 1_000_000)
    assert floor.max_rate == DEFINITIONS["360p"].video_bitrate // 4
    # A 150 kbit/s source: the floor is itself capped by the source's bitrate.
    tiny = cap_to_source(plan, 1920 * 1080, 150_000)
    assert tiny.max_rate == 150_000 and tiny.video_bitrate < 150_000
    assert cap_to_source(plan, 1920 * 1080, 1_000_000, 32_000).audio_bitrate == 64_000


def test_caps_reach_the_encoder_argv():
    plans = plan_ladder(1280, 720, 0, "720p", source_video_bitrate=2_800_000)
    cmd = build_transcode("/in.mp4", plans, "/out", has_audio=False, frame_rate=25.0)
    assert value_after(cmd.argv, "-maxrate:v") == [str(plans[0].max_rate)]
    assert int(value_after(cmd.argv, "-b:v")[0]) < 2_800_000
    assert cmd.outputs[0].bandwidth <= 2_800_000 * 1.1


def test_snapshots_are_outputs_of_the_ladder_command():
    request = SnapshotRequest(times_ms=[500, 1500, 2500], width=1280, height=720, out_dir="/o/s")
    cmd = build_transcode("/in.mp4", plan_ladder(1920, 1080, 0), "/o", has_audio=True,
                          frame_rate=30.0, snapshots=request)  # fmt: skip
    argv = cmd.argv
    assert value_after(argv, "-i") == ["/in.mp4"]  # one input, one decode: no second process
    (graph,) = value_after(argv, "-filter_complex")
    parts = graph.split(";")
    # The decode splits into the scale chain and the snapshot branch: select, then one scaler.
    assert parts[0] == "[0:v:0]split=2[c][snap]"
    (select,) = [p for p in parts if p.startswith("[snap]select=e=")]
    assert select.endswith(",scale=1280:720:flags=bicubic,setsar=1[shots]")
    # The first frame opens the JPEG output at once (FFmpeg reports no progress before every
    # output has started, and the stall watchdog reads that progress), then one frame per time.
    assert select.startswith("[snap]select=e=eq(n\\,0)+")
    for t in ("0.500", "1.500", "2.500"):
        assert f"gte(t\\,{t})*(isnan(prev_pts)+lt(prev_pts*TB\\,{t}))" in select
    assert value_after(argv, "-map")[-1] == "[shots]"
    assert value_after(argv, "-fps_mode:v") == ["passthrough"]
    assert value_after(argv, "-start_number") == ["0"]
    assert argv[-1] == "/o/s/snapshot_%02d.jpg"
    shots = cmd.snapshots
    # snapshot_00.jpg is the opening frame; snapshot i is file i + 1.
    assert shots is not None and shots.paths == [f"/o/s/snapshot_{i:02d}.jpg" for i in (1, 2, 3)]
    assert shots.times_ms == [500, 1500, 2500] and (shots.width, shots.height) == (1280, 720)
    assert "/o/s" in cmd.directories


def test_snapshots_alone_beside_a_passthrough_still_decode():
    from tests.transcode.test_passthrough import choose, phone_clip, plans_for

    info = phone_clip()
    request = SnapshotRequest(times_ms=[1000], width=1280, height=720, out_dir="/o/s")
    chosen = choose(info, "1080p")
    cmd = build_transcode("/in.mp4", plans_for(info, "1080p"), "/o", has_audio=True,
                          frame_rate=30.0, passthrough=chosen, snapshots=request)  # fmt: skip
    (graph,) = value_after(cmd.argv, "-filter_complex")
    assert graph.startswith("[0:v:0]null[snap];[snap]select=e=")
    assert value_after(cmd.argv, "-c:v") == ["copy"]


def test_snapshot_outputs_need_times():
    with pytest.raises(ValueError):
        snapshot_outputs("snap", "/o", [], width=2, height=2)
