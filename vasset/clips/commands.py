"""FFmpeg argv of a clip: stream copy when every cut is on a key frame, else one re-encode (pure).

Why not a "smart cut" (re-encode each range's head up to its first key frame, copy the rest):
the re-encoded head and the copied tail carry different H.264 parameter sets in one MP4 track,
which FFmpeg's mov muxer records only once, so players decode the tail with the head's SPS/PPS
and show garbage. The clip is an intermediate source that the ladder re-encodes anyway, so a
range that needs an exact cut is re-encoded whole at near-lossless quality (CRF 18), and the
common editing case (cuts chosen on key frames, e.g. from the storyboard) is a pure copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from vasset.clips.ranges import Range
from vasset.transcode.ffargs import PROTOCOLS, VIDEO_DEMUXERS, common_args, input_args, whitelist

FFPROBE = "ffprobe"
#: Audio of a re-encoded clip: the ladder's AAC comes from it, so keep it generous.
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
CRF = 18


class Piece(msgspec.Struct, frozen=True, kw_only=True):
    """One input of a re-encoded clip: an intro, a range of the main video, or an outro."""

    path: str
    demuxer: str | None = None
    start_ms: int | None = None  # None: the whole file
    end_ms: int | None = None
    duration_ms: int
    has_audio: bool


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def keyframes_argv(
    path: str | os.PathLike[str], demuxer: str | None, around: list[int] | None = None
) -> list[str]:
    """ffprobe listing the first video stream's packets (pts, flags); headers only, no decode.

    around: only the packets within a second of these times (ms), each window reached by a
    seek, so a cut in a long file costs a few dozen packets instead of all of them.
    """
    argv = [FFPROBE, "-v", "error", "-protocol_whitelist", PROTOCOLS]
    argv += ["-format_whitelist", whitelist(VIDEO_DEMUXERS)]
    if demuxer:
        argv += ["-f", demuxer.split(",")[0]]
    argv += ["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"]
    if around:
        windows = [
            f"{_seconds(max(0, t - 1000))}%{_seconds(t + 1000)}" for t in sorted(set(around))
        ]
        argv += ["-read_intervals", ",".join(windows)]
    return [*argv, "-of", "csv=p=0", os.fspath(path)]


def parse_keyframes(csv: str) -> list[int]:
    """Key frame times in ms from keyframes_argv's output, sorted."""
    found = set()
    for line in csv.splitlines():
        pts, _, flags = line.partition(",")
        if flags.startswith("K"):
            try:
                found.add(round(float(pts) * 1000))
            except ValueError:
                continue  # a packet without a timestamp
    return sorted(found)


def concat_list(source: str | os.PathLike[str], ranges: list[Range]) -> str:
    """An ffconcat script naming the ranges of one file (inpoint/outpoint, in seconds)."""
    quoted = os.fspath(source).replace("'", "'\\''")
    lines = ["ffconcat version 1.0"]
    for r in ranges:
        lines += [f"file '{quoted}'", f"inpoint {_seconds(r.start_ms)}"]
        lines.append(f"outpoint {_seconds(r.end_ms)}")
    return "\n".join(lines) + "\n"


def copy_argv(script: Path, demuxer: str | None, out: Path, has_audio: bool) -> list[str]:
    """Stream-copy the ranges of an ffconcat script into one MP4 (no decode at all)."""
    inner = demuxer.split(",")[0] if demuxer else "mov"
    argv = common_args()
    # The concat demuxer opens the source itself: file protocol and its demuxer only.
    argv += ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", f"concat,{inner}"]
    argv += ["-f", "concat", "-safe", "0", "-i", os.fspath(script), "-map", "0:v:0"]
    if has_audio:
        argv += ["-map", "0:a:0"]
    return [*argv, "-c", "copy", "-avoid_negative_ts", "make_zero", os.fspath(out)]


def even(value: int) -> int:
    """value rounded down to an even number (H.264 4:2:0 needs even sides), at least 2."""
    return max(2, value - value % 2)


def reencode_argv(
    pieces: list[Piece],
    out: Path,
    *,
    width: int,
    height: int,
    frame_rate: float,
    threads: int = 0,
) -> list[str]:
    """One FFmpeg run: each piece seeked exactly, fitted into width x height, concatenated."""
    width, height = even(width), even(height)
    rate = f"{frame_rate:.3f}".rstrip("0").rstrip(".") if frame_rate > 0 else "25"
    with_audio = any(p.has_audio for p in pieces)
    argv = common_args()
    for p in pieces:
        if p.start_ms is not None:
            # Input seeking while decoding is exact: frames before start are decoded, not kept.
            argv += ["-ss", _seconds(p.start_ms)]
        if p.end_ms is not None:
            argv += ["-to", _seconds(p.end_ms)]
        argv += input_args(p.path, demuxer=p.demuxer)
    chains, joined = [], []
    for i, p in enumerate(pieces):
        # Letterbox (keep aspect), square pixels, one frame rate: concat needs equal frames.
        chains.append(
            f"[{i}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate},format=yuv420p[v{i}]"
        )
        joined.append(f"[v{i}]")
        if not with_audio:
            continue
        if p.has_audio:
            chains.append(
                f"[{i}:a:0]aresample={AUDIO_RATE},"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}]"
            )
        else:
            chains.append(
                f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=duration={_seconds(p.duration_ms)},"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}]"
            )
        joined.append(f"[a{i}]")
    outs = "[v][a]" if with_audio else "[v]"
    chains.append(f"{''.join(joined)}concat=n={len(pieces)}:v=1:a={int(with_audio)}{outs}")
    argv += ["-filter_complex", ";".join(chains), "-map", "[v]"]
    if with_audio:
        argv += ["-map", "[a]", "-c:a", "aac", "-b:a", AUDIO_BITRATE]
    argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-pix_fmt", "yuv420p"]
    if threads:
        argv += ["-threads", str(threads)]
    return [*argv, "-movflags", "+faststart", os.fspath(out)]
