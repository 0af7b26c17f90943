"""H.264 facts the ladder needs: the smallest level that fits, and its RFC 6381 CODECS string."""

from __future__ import annotations

import math

MAX_FRAME_RATE = 60.0

# H.264 levels: (name, max macroblocks per second, max macroblocks per frame).
_H264_LEVELS: tuple[tuple[str, int, int], ...] = (
    ("3.0", 40_500, 1_620),
    ("3.1", 108_000, 3_600),
    ("3.2", 216_000, 5_120),
    ("4.0", 245_760, 8_192),
    ("4.2", 522_240, 8_704),
    ("5.0", 589_824, 22_080),
    ("5.1", 983_040, 36_864),
    ("5.2", 2_073_600, 36_864),
)


def h264_level(width: int, height: int, frame_rate: float) -> str:
    """Smallest H.264 level that fits this size and frame rate (names the HLS CODECS string)."""
    mbs = math.ceil(width / 16) * math.ceil(height / 16)
    rate = min(max(frame_rate, 1.0), MAX_FRAME_RATE)
    for name, per_second, per_frame in _H264_LEVELS:
        if mbs <= per_frame and mbs * rate <= per_second:
            return name
    return _H264_LEVELS[-1][0]


def codecs_string(level: str, *, has_audio: bool) -> str:
    """RFC 6381 CODECS value for High-profile H.264 at a level, plus AAC-LC when there is audio."""
    # -profile:v high caps x264 rather than forcing it: with preset ultrafast the stream is
    # Constrained Baseline, which every High decoder plays, so announcing High stays safe.
    major, minor = level.split(".")
    video = f"avc1.6400{int(major) * 10 + int(minor):02x}"
    return f"{video},mp4a.40.2" if has_audio else video
