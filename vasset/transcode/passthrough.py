"""Whether the top rendition may be the source's own video, remuxed instead of re-encoded (pure).

Hosted services do this: a phone's H.264 already at the top rendition's size and within its
bitrate cap gains nothing from a second lossy encode, and the remux costs almost no CPU. The
stream must play wherever the re-encoded renditions play (H.264 in a common profile, 4:2:0, even
size, square pixels, no rotation to apply) and cut into HLS segments like them (key frames at
least every segment duration).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from vasset.transcode.ladder import RenditionPlan
from vasset.transcode.probe import MediaInfo

# RFC 6381 profile_idc + constraint byte for the H.264 profiles every HLS player decodes.
_PROFILES: dict[str, str] = {
    "Constrained Baseline": "42e0",
    "Baseline": "4200",
    "Main": "4d40",
    "High": "6400",
}
MAX_FRAME_RATE = 60.0


class Passthrough(msgspec.Struct, frozen=True, kw_only=True):
    """The rendition that copies the source's video (and its audio, when it is AAC-LC)."""

    name: str
    copy_audio: bool
    video_bitrate: int
    audio_bitrate: int | None  # the source's, when copied
    codecs_video: str  # RFC 6381, e.g. "avc1.640028"
    level: str  # "4.0"


def refusal(info: MediaInfo, plan: RenditionPlan, *, max_keyframe_interval: float) -> str | None:
    """Why plan cannot be a remux of the source, or None when it can."""
    if info.video_codec != "h264":
        return f"codec {info.video_codec}"
    if info.video_profile not in _PROFILES:
        return f"profile {info.video_profile}"
    if info.pix_fmt not in ("yuv420p", "yuvj420p"):
        return f"pixel format {info.pix_fmt}"
    if info.width % 2 or info.height % 2:
        return "odd size"
    if info.rotation or abs(info.sample_aspect - 1.0) > 1e-3:
        return "rotation or non-square pixels"
    if (plan.width, plan.height) != (info.width, info.height):
        return "rendition size differs from the source"
    if not 0 < info.frame_rate <= MAX_FRAME_RATE:
        return f"frame rate {info.frame_rate}"
    if not info.video_level:
        return "unknown level"
    if info.keyframe_interval is None or info.keyframe_interval > max_keyframe_interval:
        return f"key frames every {info.keyframe_interval} s"
    if info.video_bitrate_estimate > plan.max_rate:
        return f"bitrate {info.video_bitrate_estimate} over the cap {plan.max_rate}"
    return None


def choose_passthrough(
    info: MediaInfo, plans: Sequence[RenditionPlan], *, max_keyframe_interval: float
) -> Passthrough | None:
    """The top plan as a remux of the source when the source fits it, else None."""
    if not plans or refusal(info, plans[-1], max_keyframe_interval=max_keyframe_interval):
        return None
    top = plans[-1]
    level = info.video_level or 0
    copy_audio = info.audio_codec == "aac" and info.audio_profile == "LC"
    return Passthrough(
        name=top.name,
        copy_audio=copy_audio,
        video_bitrate=info.video_bitrate_estimate,
        audio_bitrate=info.audio_bitrate if copy_audio else None,
        codecs_video=f"avc1.{_PROFILES[info.video_profile or '']}{level:02x}",
        level=f"{level // 10}.{level % 10}",
    )


#: Sample rates players decode in AAC-LC without trouble (copied audio keeps its rate).
COPYABLE_SAMPLE_RATES = (32000, 44100, 48000)


def audio_copy(info: MediaInfo, plans: list[RenditionPlan]) -> int | None:
    """The source's audio bitrate when every rendition can copy its audio; else None.

    Hosted services pass such audio through: stereo or mono AAC-LC at a common rate and within
    every rung's audio bitrate comes out of a re-encode no better, and each re-encode costs an
    AAC encode per rendition on FFmpeg's main thread (seconds for a long video).
    """
    if info.audio_codec != "aac" or info.audio_profile != "LC" or not info.audio_bitrate:
        return None
    if info.audio_channels not in (1, 2) or info.audio_sample_rate not in COPYABLE_SAMPLE_RATES:
        return None
    if any(info.audio_bitrate > p.audio_bitrate for p in plans):
        return None
    return info.audio_bitrate
