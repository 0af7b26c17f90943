"""HEVC (libx265) and AV1 (libsvtav1) renditions beside the H.264 ladder (pure: argv lists only).

A job that asks for ``codec=hevc`` or ``codec=av1`` keeps the whole H.264 ladder, so every
player can still play the video, and gets one more rendition per definition in that codec
(named ``720p-hevc``, ``720p-av1``). They are scaled by the same decode, cut on the same key-frame
clock and written as MP4 and fMP4 HLS like the H.264 ones; the master playlist's CODECS names
``hvc1...`` or ``av01...``, so players that cannot decode them skip those variants. Their rates
are the H.264 plan's (already capped by the source) times the codec's efficiency, and the level
is chosen here and forced on the encoder, so the CODECS string always says what the stream is.
Passthrough (remux) applies to H.264 only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from vasset.transcode.ladder import RenditionPlan

H264 = "h264"
#: The codecs a job may ask for beside H.264.
EXTRA = ("hevc", "av1")

#: Bits a codec needs for H.264's quality, as a share of H.264's (conservative published figures).
EFFICIENCY = {"hevc": 0.7, "av1": 0.6}

# Presets fit for a 2-core machine: on a shared 2-core host 4 s of 720p30 took x264 veryfast
# 1.7 s, x265 superfast 3.7 s (veryfast 4.2 s) and SVT-AV1 preset 10 2.0 s (12: 1.2 s).
X265_PRESET = "superfast"
SVTAV1_PRESET = "10"

# HEVC levels (Main tier): name, general_level_idc, max luma picture size, max luma samples/s,
# max bit rate (bits/s).
_HEVC_LEVELS: tuple[tuple[str, int, int, int, int], ...] = (
    ("1", 30, 36_864, 552_960, 128_000),
    ("2", 60, 122_880, 3_686_400, 1_500_000),
    ("2.1", 63, 245_760, 7_372_800, 3_000_000),
    ("3", 90, 552_960, 16_588_800, 6_000_000),
    ("3.1", 93, 983_040, 33_177_600, 10_000_000),
    ("4", 120, 2_228_224, 66_846_720, 12_000_000),
    ("4.1", 123, 2_228_224, 133_693_440, 20_000_000),
    ("5", 150, 8_912_896, 267_386_880, 25_000_000),
    ("5.1", 153, 8_912_896, 534_773_760, 40_000_000),
    ("5.2", 156, 8_912_896, 1_069_547_520, 60_000_000),
    ("6", 180, 35_651_584, 1_069_547_520, 60_000_000),
    ("6.1", 183, 35_651_584, 2_139_095_040, 120_000_000),
    ("6.2", 186, 35_651_584, 4_278_190_080, 240_000_000),
)

# AV1 levels (Main tier): name, seq_level_idx, max picture size, max width, max height,
# max display rate (samples/s), max bit rate (bits/s).
_AV1_LEVELS: tuple[tuple[str, int, int, int, int, int, int], ...] = (
    ("2.0", 0, 147_456, 2048, 1152, 4_423_680, 1_500_000),
    ("2.1", 1, 278_784, 2816, 1584, 8_363_520, 3_000_000),
    ("3.0", 4, 665_856, 4352, 2448, 19_975_680, 6_000_000),
    ("3.1", 5, 1_065_024, 5504, 3096, 31_950_720, 10_000_000),
    ("4.0", 8, 2_359_296, 6144, 3456, 70_778_880, 12_000_000),
    ("4.1", 9, 2_359_296, 6144, 3456, 141_557_760, 20_000_000),
    ("5.0", 12, 8_912_896, 8192, 4352, 267_386_880, 30_000_000),
    ("5.1", 13, 8_912_896, 8192, 4352, 534_773_760, 40_000_000),
    ("5.2", 14, 8_912_896, 8192, 4352, 1_069_547_520, 60_000_000),
    ("6.0", 16, 35_651_584, 16384, 8704, 1_069_547_520, 60_000_000),
    ("6.1", 17, 35_651_584, 16384, 8704, 2_139_095_040, 100_000_000),
    ("6.2", 18, 35_651_584, 16384, 8704, 4_278_190_080, 160_000_000),
)


class Encoding(msgspec.Struct, frozen=True, kw_only=True):
    """How one non-H.264 rendition is encoded and what the master playlist says about it."""

    level: str
    args: list[str]
    codecs: str


def variant_name(name: str, codec: str) -> str:
    """The definition a codec variant is published under (``720p-hevc``)."""
    return f"{name}-{codec}"


def with_variants(plans: Sequence[RenditionPlan], codec: str | None) -> list[RenditionPlan]:
    """The H.264 plans plus, for hevc or av1, one rendition of that codec per plan."""
    if codec in (None, H264):
        return list(plans)
    if codec not in EXTRA:
        raise ValueError(f"unknown codec {codec!r}")
    share = EFFICIENCY[codec]
    variants = [
        msgspec.structs.replace(
            plan,
            name=variant_name(plan.name, codec),
            codec=codec,
            video_bitrate=max(1, round(plan.video_bitrate * share)),
            max_rate=max(1, round(plan.max_rate * share)),
            buffer_size=max(1, round(plan.buffer_size * share)),
        )
        for plan in plans
    ]
    return [*plans, *variants]


def hevc_level(width: int, height: int, frame_rate: float, max_rate: int) -> tuple[str, int]:
    """Smallest HEVC Main-tier level (name, general_level_idc) for this size, rate and bit rate."""
    pixels = width * height
    rate = pixels * max(frame_rate, 1.0)
    for name, idc, max_ps, max_sr, max_br in _HEVC_LEVELS:
        side = math.isqrt(8 * max_ps)
        if (
            pixels <= max_ps
            and max(width, height) <= side
            and rate <= max_sr
            and max_rate <= max_br
        ):
            return name, idc
    name, idc, *_ = _HEVC_LEVELS[-1]
    return name, idc


def av1_level(width: int, height: int, frame_rate: float, max_rate: int) -> tuple[str, int]:
    """Smallest AV1 Main-tier level (name, seq_level_idx) for this size, rate and bit rate."""
    pixels = width * height
    rate = pixels * max(frame_rate, 1.0)
    for name, idx, max_pic, max_w, max_h, max_disp, max_br in _AV1_LEVELS:
        if (
            pixels <= max_pic
            and width <= max_w
            and height <= max_h
            and rate <= max_disp
            and max_rate <= max_br
        ):
            return name, idx
    name, idx, *_ = _AV1_LEVELS[-1]
    return name, idx


def codecs_string(codec: str, level_number: int, *, has_audio: bool) -> str:
    """RFC 6381 CODECS value of a Main-profile 8-bit HEVC or AV1 rendition, plus AAC-LC audio."""
    if codec == "hevc":
        # hvc1, Main profile (1), compatibility flags 0x60000000 bit-reversed (6), the level,
        # and the constraint byte x265 writes (progressive source, frame only: 0x90).
        video = f"hvc1.1.6.L{level_number}.90"
    elif codec == "av1":
        # av01, Main profile (0), seq_level_idx, Main tier, 8 bits.
        video = f"av01.0.{level_number:02d}M.08"
    else:
        raise ValueError(f"no CODECS string for {codec!r}")
    return f"{video},mp4a.40.2" if has_audio else video


def encoding(
    plan: RenditionPlan, *, frame_rate: float, gop: int, keyframes: str, has_audio: bool
) -> Encoding | None:
    """Encoder options of a hevc or av1 plan (None for H.264): rates capped, key frames on clock."""
    if plan.codec == H264:
        return None
    rates = [
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        str(plan.video_bitrate),
        "-maxrate:v",
        str(plan.max_rate),
        "-bufsize:v",
        str(plan.buffer_size),
        # The same clock as H.264, so every variant cuts its HLS segments at the same instants.
        "-force_key_frames:v",
        keyframes,
        "-g:v",
        str(gop),
        # Parameter sets go in the sample entry (hvcC, av1C): through the tee muxer the encoder
        # is not asked for them otherwise, and av1C stayed empty (players refuse that).
        "-flags:v",
        "+global_header",
    ]
    if plan.codec == "hevc":
        name, idc = hevc_level(plan.width, plan.height, frame_rate, plan.max_rate)
        x265 = (
            f"log-level=error:level-idc={name}:scenecut=0:open-gop=0:keyint={gop}:min-keyint={gop}"
        )
        args = [
            "-c:v",
            "libx265",
            "-preset",
            X265_PRESET,
            "-profile:v",
            "main",
            # hvc1 (parameter sets only in hvcC), the sample entry Safari plays.
            "-tag:v",
            "hvc1",
            *rates,
            "-x265-params:v",
            x265,
        ]
        return Encoding(
            level=name, args=args, codecs=codecs_string("hevc", idc, has_audio=has_audio)
        )
    if plan.codec == "av1":
        name, idx = av1_level(plan.width, plan.height, frame_rate, plan.max_rate)
        major, minor = name.split(".")
        args = [
            "-c:v",
            "libsvtav1",
            "-preset",
            SVTAV1_PRESET,
            *rates,
            "-svtav1-params:v",
            f"level={major}{minor}",
        ]
        return Encoding(
            level=name, args=args, codecs=codecs_string("av1", idx, has_audio=has_audio)
        )
    raise ValueError(f"{plan.name} is not a hevc or av1 rendition")
