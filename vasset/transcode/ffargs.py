"""What every FFmpeg and ffprobe argv shares: the binary, quiet options, and input whitelists.

Inputs are opened with the ``file`` protocol only and a demuxer whitelist, which refuses e.g. an
HLS playlist renamed to ``.mp4``; the probe uses the same lists, so it reads what the transcode
will read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

FFMPEG = "ffmpeg"

# Demuxers a source video may be read with. No playlists (hls, concat), no image sequences, no
# demuxers that open other files or URLs; "mov" also covers mp4, m4a, 3gp and 3g2.
VIDEO_DEMUXERS: tuple[str, ...] = (
    "mov",
    "matroska",
    "webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "asf",
    "ogg",
    "h264",
    "hevc",
    "m4v",
    "mpegvideo",
    "ivf",
    "dv",
)
# Probing also accepts audio and still-image demuxers, only to say "not a video" precisely.
AUDIO_DEMUXERS: tuple[str, ...] = ("mp3", "aac", "wav", "flac", "ogg")
IMAGE_DEMUXERS: tuple[str, ...] = (
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "bmp_pipe",
    "tiff_pipe",
    "gif",
    "gif_pipe",
)
PROTOCOLS = "file"


def whitelist(demuxers: Iterable[str]) -> str:
    """Comma list for -format_whitelist, without duplicates."""
    return ",".join(dict.fromkeys(demuxers))


def input_args(source: str | os.PathLike[str], *, demuxer: str | None = None) -> list[str]:
    """Options and -i for a source: file protocol only, whitelisted demuxers, optional -f."""
    args = ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", whitelist(VIDEO_DEMUXERS)]
    if demuxer:
        # FFmpeg names demuxers "mov,mp4,m4a,..."; -f takes one name. Pinning it means the
        # transcode reads the file exactly as the probe did.
        args += ["-f", demuxer.split(",")[0]]
    return [*args, "-i", os.fspath(source)]


def common_args(*, loglevel: str = "warning") -> list[str]:
    """Options every vasset FFmpeg run starts with: no stdin, progress on stdout, no stats."""
    return [
        FFMPEG,
        "-nostdin",
        "-hide_banner",
        "-y",
        "-loglevel",
        loglevel,
        "-nostats",
        "-progress",
        "pipe:1",
    ]
