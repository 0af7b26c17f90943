"""The rendition ladder: which definitions exist and which sizes a given source gets (pure).

Sizes are planned on the *display* picture: rotation 90/270 swaps the stored width and height
(FFmpeg autorotates while decoding), and a non-square sample aspect ratio stretches the width.
Renditions are scaled by the short side, so a portrait source gets portrait renditions of the
same definitions, and they are never upscaled.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

DEFAULT_LADDER = "360p,480p,720p,1080p"

# A rung may keep its name when the source falls this little short of it (1920x1072 is "1080p").
DEFAULT_TOLERANCE = 0.05

# Cover and snapshot images need not be larger than this on their short side.
SNAPSHOT_MAX_SHORT = 720

# Capped by the source's bitrate, a rendition still gets at least this share of its rung's budget
# (a 300 kbit/s 1080p source would otherwise leave 33 kbit/s for 360p), never more than the
# source's own bitrate, and audio never less than this.
CAP_FLOOR_SHARE = 0.25
MIN_AUDIO_BITRATE = 64_000

K = 1000


class Rendition(msgspec.Struct, frozen=True, kw_only=True):
    """One definition of the ladder: target short side and rate-control budget in bits/s."""

    name: str
    height: int
    video_bitrate: int
    max_rate: int
    buffer_size: int
    audio_bitrate: int


class RenditionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What one rendition of one source will be: the definition name and the output size."""

    name: str
    width: int
    height: int
    video_bitrate: int
    max_rate: int
    buffer_size: int
    audio_bitrate: int
    #: h264, or hevc/av1 for a codec variant (see transcode.codecs).
    codec: str = "h264"


def _rung(name: str, height: int, kbps: int, audio_kbps: int) -> Rendition:
    # Max rate 1.07x and a 1.5x buffer: a capped VBR that HLS players can budget for.
    return Rendition(
        name=name,
        height=height,
        video_bitrate=kbps * K,
        max_rate=kbps * 107 // 100 * K,
        buffer_size=kbps * 3 // 2 * K,
        audio_bitrate=audio_kbps * K,
    )


DEFINITIONS: dict[str, Rendition] = {
    r.name: r
    for r in (
        _rung("240p", 240, 400, 64),
        _rung("360p", 360, 800, 96),
        _rung("480p", 480, 1400, 128),
        _rung("540p", 540, 2000, 128),
        _rung("720p", 720, 2800, 128),
        _rung("1080p", 1080, 5000, 192),
        _rung("1440p", 1440, 9000, 192),
        _rung("2160p", 2160, 16000, 192),
    )
}


def parse_ladder(spec: str | Iterable[str]) -> tuple[Rendition, ...]:
    """Definitions named in a comma list (or iterable), deduplicated, lowest first."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    picked: dict[str, Rendition] = {}
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in DEFINITIONS:
            known = ",".join(DEFINITIONS)
            raise ValueError(f"unknown definition {raw.strip()!r}; known: {known}")
        picked[name] = DEFINITIONS[name]
    if not picked:
        raise ValueError("the ladder names no definition")
    return tuple(sorted(picked.values(), key=lambda r: r.height))


def even(value: float) -> int:
    """Nearest even integer, at least 2 (H.264 4:2:0 needs even dimensions)."""
    return max(2, 2 * round(value / 2))


def display_size(
    width: int, height: int, rotation: int = 0, *, sample_aspect: float = 1.0
) -> tuple[int, int]:
    """Width and height as a player shows them: sample aspect applied, then rotation."""
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid source size {width}x{height}")
    if sample_aspect > 0 and abs(sample_aspect - 1.0) > 1e-3:
        width = round(width * sample_aspect)
    if rotation % 180 == 90:
        return height, width
    return width, height


def _floor_even(value: int) -> int:
    return max(2, value - value % 2)


def _fit_short(dw: int, dh: int, short_out: int) -> tuple[int, int]:
    """Scale display size dw x dh so that its short side becomes short_out; even, never larger."""
    short, long = min(dw, dh), max(dw, dh)
    short_even = _floor_even(min(short_out, short))
    long_even = min(even(long * short_even / short), _floor_even(long))
    return (long_even, short_even) if dw >= dh else (short_even, long_even)


def plan_ladder(
    width: int,
    height: int,
    rotation: int,
    ladder: Iterable[Rendition] | str = DEFAULT_LADDER,
    *,
    sample_aspect: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
    source_video_bitrate: int | None = None,
    source_audio_bitrate: int | None = None,
) -> list[RenditionPlan]:
    """Renditions for a source of stored size width x height: no upscale, even, lowest first.

    With the source's bitrates, no rendition asks for more bits than the source has for its
    pixels (see cap_to_source).
    """
    rungs = parse_ladder(ladder) if isinstance(ladder, str) else tuple(ladder)
    rungs = tuple(sorted(rungs, key=lambda r: r.height))
    if not rungs:
        raise ValueError("the ladder names no definition")
    dw, dh = display_size(width, height, rotation, sample_aspect=sample_aspect)
    short = min(dw, dh)
    fitting = [r for r in rungs if r.height * (1 - tolerance) <= short]
    if not fitting:
        # Smaller than the lowest rung: one rendition at the source's own size, under that name.
        fitting = [rungs[0]]
    plans: list[RenditionPlan] = []
    seen: set[tuple[int, int]] = set()
    for rung in fitting:
        w, h = _fit_short(dw, dh, min(rung.height, short))
        if (w, h) in seen:
            continue
        seen.add((w, h))
        out_short = min(w, h)
        # A rendition below its rung's size needs fewer bits; scale by area, within reason.
        factor = 1.0 if out_short >= rung.height else max(0.25, (out_short / rung.height) ** 2)
        plans.append(
            RenditionPlan(
                name=rung.name,
                width=w,
                height=h,
                video_bitrate=round(rung.video_bitrate * factor),
                max_rate=round(rung.max_rate * factor),
                buffer_size=round(rung.buffer_size * factor),
                audio_bitrate=rung.audio_bitrate,
            )
        )
    if source_video_bitrate:
        plans = [
            cap_to_source(p, dw * dh, source_video_bitrate, source_audio_bitrate) for p in plans
        ]
    return plans


def cap_to_source(
    plan: RenditionPlan,
    source_pixels: int,
    source_video_bitrate: int,
    source_audio_bitrate: int | None = None,
) -> RenditionPlan:
    """plan with its rates capped by the source's bitrate scaled by pixel count.

    The cap bounds the max rate, so the average (1/1.07 of it, as for the rungs) lands below it:
    a rendition never comes out larger than the source it was made from.
    """
    share = plan.width * plan.height / max(1, source_pixels)
    floor = min(plan.video_bitrate * CAP_FLOOR_SHARE, source_video_bitrate)
    cap = int(max(source_video_bitrate * min(1.0, share), floor))
    max_rate = min(plan.max_rate, cap)
    video = min(plan.video_bitrate, max_rate * 100 // 107)
    audio = plan.audio_bitrate
    if source_audio_bitrate:
        audio = min(audio, max(source_audio_bitrate, MIN_AUDIO_BITRATE))
    return msgspec.structs.replace(
        plan,
        video_bitrate=video,
        max_rate=max_rate,
        buffer_size=min(plan.buffer_size, video * 3 // 2),
        audio_bitrate=audio,
    )


def snapshot_size(
    width: int,
    height: int,
    rotation: int = 0,
    *,
    sample_aspect: float = 1.0,
    max_short: int = SNAPSHOT_MAX_SHORT,
) -> tuple[int, int]:
    """Even display size of snapshot images: the source's, shrunk to max_short on the short side."""
    dw, dh = display_size(width, height, rotation, sample_aspect=sample_aspect)
    return _fit_short(dw, dh, min(max_short, min(dw, dh)))
