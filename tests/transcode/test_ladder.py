"""Ladder planning: no upscale, even sizes, rotation, portrait, names kept."""

from __future__ import annotations

import pytest

from vasset.transcode.ladder import (
    DEFAULT_LADDER,
    DEFINITIONS,
    display_size,
    even,
    parse_ladder,
    plan_ladder,
    snapshot_size,
)


def sizes(plans):
    return [(p.name, p.width, p.height) for p in plans]


def test_parse_default_ladder():
    ladder = parse_ladder(DEFAULT_LADDER)
    assert [r.name for r in ladder] == ["360p", "480p", "720p", "1080p"]
    for r in ladder:
        assert r.max_rate > r.video_bitrate > 0
        assert r.buffer_size > r.video_bitrate
        assert r.audio_bitrate > 0


def test_parse_sorts_dedups_and_trims():
    assert [r.name for r in parse_ladder(" 1080P, 360p,,360p ,720p")] == ["360p", "720p", "1080p"]
    assert parse_ladder(["480p"]) == (DEFINITIONS["480p"],)


@pytest.mark.parametrize("spec", ["", " , ", "999p", "360p,hd"])
def test_parse_rejects(spec):
    with pytest.raises(ValueError):
        parse_ladder(spec)


@pytest.mark.parametrize(
    ("width", "height", "rotation", "expected"),
    [
        (
            1920,
            1080,
            0,
            [("360p", 640, 360), ("480p", 854, 480), ("720p", 1280, 720), ("1080p", 1920, 1080)],
        ),
        # Portrait stored upright: scaled by the short side, portrait out.
        (
            1080,
            1920,
            0,
            [("360p", 360, 640), ("480p", 480, 854), ("720p", 720, 1280), ("1080p", 1080, 1920)],
        ),
        # Phone portrait: stored landscape, rotated 90 -> same as upright portrait.
        (
            1920,
            1080,
            90,
            [("360p", 360, 640), ("480p", 480, 854), ("720p", 720, 1280), ("1080p", 1080, 1920)],
        ),
        (1280, 720, 270, [("360p", 360, 640), ("480p", 480, 854), ("720p", 720, 1280)]),
        (1280, 720, 180, [("360p", 640, 360), ("480p", 854, 480), ("720p", 1280, 720)]),
        # 400p source: 360p only, never upscaled to 480p.
        (640, 400, 0, [("360p", 576, 360)]),
        # Below the lowest rung: one rendition at its own (even) size, under the lowest name.
        (320, 180, 0, [("360p", 320, 180)]),
        (321, 241, 0, [("360p", 320, 240)]),
        (320, 180, 90, [("360p", 180, 320)]),
        # Within 5 % of a rung keeps the rung's name at the source's own size.
        (
            1920,
            1072,
            0,
            [("360p", 644, 360), ("480p", 860, 480), ("720p", 1290, 720), ("1080p", 1920, 1072)],
        ),
        # 4:3
        (
            1440,
            1080,
            0,
            [("360p", 480, 360), ("480p", 640, 480), ("720p", 960, 720), ("1080p", 1440, 1080)],
        ),
        # Odd long side never rounds up past the source.
        (1283, 720, 0, [("360p", 642, 360), ("480p", 856, 480), ("720p", 1282, 720)]),
        (2, 2, 0, [("360p", 2, 2)]),
    ],
)
def test_plan_table(width, height, rotation, expected):
    plans = plan_ladder(width, height, rotation, DEFAULT_LADDER)
    assert sizes(plans) == expected
    dw, dh = display_size(width, height, rotation)
    for p in plans:
        assert p.width % 2 == 0 and p.height % 2 == 0
        assert p.width <= max(dw, 2) and p.height <= max(dh, 2)


def test_plan_keeps_rung_bitrates_and_scales_small_renditions():
    full = plan_ladder(1920, 1080, 0)
    assert [p.video_bitrate for p in full] == [DEFINITIONS[p.name].video_bitrate for p in full]
    (small,) = plan_ladder(320, 180, 0)
    assert DEFINITIONS["360p"].video_bitrate * 0.25 <= small.video_bitrate
    assert small.video_bitrate < DEFINITIONS["360p"].video_bitrate
    assert small.max_rate > small.video_bitrate


def test_plan_with_subset_and_custom_ladder():
    assert sizes(plan_ladder(1920, 1080, 0, "720p")) == [("720p", 1280, 720)]
    # A ladder entirely above the source gives one rendition at the source size.
    assert sizes(plan_ladder(640, 360, 0, "720p,1080p")) == [("720p", 640, 360)]


def test_plan_sample_aspect():
    # PAL 16:9 anamorphic: stored 720x576, shown 1048x576 (rounded even).
    plans = plan_ladder(720, 576, 0, "360p,480p", sample_aspect=64 / 45)
    assert sizes(plans) == [("360p", 640, 360), ("480p", 854, 480)]


def test_plan_rejects_bad_sizes():
    with pytest.raises(ValueError):
        plan_ladder(0, 1080, 0)
    with pytest.raises(ValueError):
        plan_ladder(1920, 1080, 0, [])


def test_even_and_snapshot_size():
    assert [even(x) for x in (0, 1, 2, 3, 4.9, 5.1)] == [2, 2, 2, 4, 4, 6]
    assert snapshot_size(1920, 1080, 0) == (1280, 720)
    assert snapshot_size(1920, 1080, 90) == (720, 1280)
    assert snapshot_size(321, 241, 0) == (320, 240)
    assert snapshot_size(320, 180, 270) == (180, 320)
