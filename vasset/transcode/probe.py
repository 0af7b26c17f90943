"""What a media file is, and whether vasset will transcode it.

``probe()`` is blocking (it runs ffprobe, one short ffmpeg decode and libmediainfo, each in its
own short-lived process); the worker calls it in a thread. FFmpeg decides what is acceptable,
because FFmpeg does the transcode: ffprobe runs first, with the same protocol and demuxer
whitelists as the transcode, and MediaInfo (which follows playlists and references on its own)
only ever sees files FFmpeg accepted.

Dimensions: ``width``/``height`` are the stored (coded) picture size, ``rotation`` the clockwise
degrees a player turns it (0, 90, 180, 270, as FFmpeg's autorotate applies it), and
``display_width``/``display_height`` the size as shown. Truncated files are refused
(CorruptMedia): a partial MP4 would transcode into a shorter video than its index claims.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import msgspec
import structlog

from vasset.transcode.ffargs import (
    AUDIO_DEMUXERS,
    FFMPEG,
    IMAGE_DEMUXERS,
    PROTOCOLS,
    VIDEO_DEMUXERS,
    input_args,
    whitelist,
)
from vasset.transcode.ladder import display_size
from vasset.transcode.media_errors import CorruptMedia as CorruptMedia
from vasset.transcode.media_errors import InvalidOutput as InvalidOutput
from vasset.transcode.media_errors import MediaError as MediaError
from vasset.transcode.media_errors import NotAVideo as NotAVideo
from vasset.transcode.media_errors import ProbeFailed as ProbeFailed
from vasset.transcode.media_errors import UnsupportedMedia as UnsupportedMedia
from vasset.transcode.mediainfo import MediaInfoError, first_tracks
from vasset.transcode.unreadable import is_image_demuxer, last_line, raise_unreadable

log = structlog.get_logger(__name__)

FFPROBE = "ffprobe"
PROBE_TIMEOUT = 60.0
MEDIAINFO_MEMORY_LIMIT = 2 << 30
# Key frames are measured over the first seconds only: enough to see a camera's GOP, and the
# packet headers of that window read in milliseconds whatever the file's length.
KEYFRAME_WINDOW_SECONDS = 30


class MediaInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Facts about a source file (sizes in bytes, bit rates in bits/s, durations in ms)."""

    format: str  # MediaInfo's container name, e.g. "MPEG-4", "Matroska"
    demuxer: str  # FFmpeg's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2"; pass it to commands
    duration_ms: int
    width: int  # stored picture, before rotation
    height: int
    rotation: int  # clockwise degrees a player applies: 0, 90, 180 or 270
    sample_aspect: float
    video_codec: str  # FFmpeg codec name: h264, hevc, vp9, ...
    audio_codec: str | None
    bitrate: int
    video_bitrate: int | None
    audio_bitrate: int | None
    frame_rate: float
    variable_frame_rate: bool
    has_video: bool
    has_audio: bool
    file_size: int
    # FFmpeg stream indexes of the video and audio used (pass to the command builders).
    video_stream: int = 0
    audio_stream: int | None = None
    # What decides whether a rendition may be the source's own video stream (passthrough).
    pix_fmt: str | None = None
    video_profile: str | None = None  # ffprobe's name, e.g. "High", "Constrained Baseline"
    video_level: int | None = None  # H.264 level x 10, e.g. 40
    audio_profile: str | None = None  # e.g. "LC", "HE-AAC"
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    # Longest gap between video key frames (s) in the first KEYFRAME_WINDOW_SECONDS; None if
    # not measured.
    keyframe_interval: float | None = None

    @property
    def video_bitrate_estimate(self) -> int:
        """The video stream's bits/s, or the whole file's minus its audio when not reported."""
        if self.video_bitrate:
            return self.video_bitrate
        return max(1, self.bitrate - (self.audio_bitrate or 0))

    @property
    def display_width(self) -> int:
        """Width as shown (after sample aspect and rotation)."""
        return self.display_size[0]

    @property
    def display_height(self) -> int:
        """Height as shown (after sample aspect and rotation)."""
        return self.display_size[1]

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown."""
        return display_size(
            self.width, self.height, self.rotation, sample_aspect=self.sample_aspect
        )


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise ProbeFailed(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(f"{os.path.basename(argv[0])} took longer than {timeout:.0f}s") from exc


def ffprobe_json(path: str | os.PathLike[str], *, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """ffprobe's format and streams as JSON, read under the probe whitelists; raises MediaError."""
    path = os.fspath(path)
    demuxers = whitelist((*VIDEO_DEMUXERS, *AUDIO_DEMUXERS, *IMAGE_DEMUXERS))
    argv = [FFPROBE, "-v", "error", "-protocol_whitelist", PROTOCOLS]
    argv += ["-format_whitelist", demuxers, "-show_format", "-show_streams", "-of", "json", path]
    proc = _run(argv, timeout)
    if proc.returncode == 0:
        try:
            data = json.loads(proc.stdout)
        except ValueError as exc:
            raise ProbeFailed("ffprobe wrote invalid JSON") from exc
        if "format" in data:
            return data
    raise_unreadable(path, proc.stderr)
    raise AssertionError("unreachable")


def _fraction(value: str | None) -> float:
    if not value or value in ("0/0", "N/A"):
        return 0.0
    try:
        return float(Fraction(value))
    except (ValueError, ZeroDivisionError):
        return 0.0


def _int(value: Any) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees from the display matrix (FFmpeg reports counter-clockwise)."""
    for side in stream.get("side_data_list") or ():
        if side.get("side_data_type") == "Display Matrix" and "rotation" in side:
            return round(-float(side["rotation"])) % 360
    legacy = (stream.get("tags") or {}).get("rotate")
    return round(float(legacy)) % 360 if legacy else 0


def _decode_first_frame(path: str, demuxer: str, index: int, timeout: float) -> None:
    """Raise CorruptMedia unless FFmpeg decodes one frame of stream index."""
    argv = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-threads", "1"]
    argv += [*input_args(path, demuxer=demuxer), "-map", f"0:{index}", "-frames:v", "1"]
    argv += ["-f", "null", "-"]
    proc = _run(argv, timeout)
    if proc.returncode != 0:
        raise CorruptMedia(f"the video stream cannot be decoded: {last_line(proc.stderr, path)}")


def keyframe_interval(
    path: str,
    demuxer: str,
    index: int,
    *,
    window: float = KEYFRAME_WINDOW_SECONDS,
    timeout: float = PROBE_TIMEOUT,
) -> float | None:
    """Longest gap in seconds between key frames of stream index over the first window seconds.

    Reads packet headers only (no decoding). The gap after the last key frame, up to the last
    packet read, counts too, so a file with a single key frame is not mistaken for a dense one.
    """
    argv = [FFPROBE, "-v", "error", "-protocol_whitelist", PROTOCOLS]
    argv += ["-format_whitelist", whitelist(VIDEO_DEMUXERS), "-f", demuxer.split(",")[0]]
    argv += ["-select_streams", str(index), "-read_intervals", f"%+{window:g}"]
    argv += ["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", path]
    proc = _run(argv, timeout)
    if proc.returncode != 0:
        return None
    keys: list[float] = []
    last = None
    for line in proc.stdout.splitlines():
        pts, _, flags = line.partition(",")
        try:
            time = float(pts)
        except ValueError:
            continue  # packets without a timestamp
        last = time if last is None else max(last, time)
        if flags.startswith("K"):
            keys.append(time)
    if not keys or last is None:
        return None
    keys.sort()
    gaps = [b - a for a, b in itertools.pairwise(keys)] + [last - keys[-1]]
    return round(max(gaps), 3)


def _mediainfo_tracks(
    path: str, file_size: int, timeout: float, memory_limit: int | None
) -> dict[str, dict[str, Any]]:
    """First General, Video and Audio tracks from libmediainfo (in a child), as plain dicts."""
    try:
        tracks = first_tracks(path, timeout=timeout, memory_limit=memory_limit)
    except MediaInfoError as exc:
        if exc.file_fault:
            # FFmpeg opened it, but its structure is hostile (thousands of tracks, a crash).
            raise UnsupportedMedia(f"the file cannot be analysed: {exc.message}") from exc
        raise ProbeFailed(exc.message) from exc
    general = tracks.get("General", {})
    seen = _int(general.get("file_size"))
    if seen is not None and seen != file_size:
        # MediaInfo read other files too (a playlist or reference movie): refuse, FFmpeg won't.
        raise UnsupportedMedia("the file refers to other files, which is not accepted")
    return tracks


def probe(
    path: str | os.PathLike[str],
    *,
    timeout: float = PROBE_TIMEOUT,
    decode_check: bool = True,
    memory_limit: int | None = MEDIAINFO_MEMORY_LIMIT,
) -> MediaInfo:
    """Describe a source video (blocking); raises NotAVideo, UnsupportedMedia, CorruptMedia.

    memory_limit caps MediaInfo's address space (bytes; it runs in a child process).
    """
    path = os.fspath(path)
    try:
        file_size = os.stat(path).st_size
    except OSError as exc:
        raise ProbeFailed(f"cannot read the source: {exc.strerror}") from exc
    if file_size == 0:
        raise UnsupportedMedia("the file is empty")

    data = ffprobe_json(path, timeout=timeout)
    fmt = data.get("format") or {}
    demuxer = str(fmt.get("format_name") or "")
    streams = data.get("streams") or []
    if is_image_demuxer(demuxer.split(",")[0]):
        raise NotAVideo("the file is a still image")
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos:
        raise NotAVideo("the file has audio only" if audios else "the file has no video stream")
    if not set(demuxer.split(",")) & set(VIDEO_DEMUXERS):
        raise UnsupportedMedia(f"the {demuxer} format is not accepted for video")
    video = videos[0]
    if not video.get("codec_name") or not _int(video.get("width")) or not _int(video.get("height")):
        raise UnsupportedMedia("the video codec is not supported")
    index = int(video["index"])
    # The three reads are child processes: side by side they cost the slowest one, not the sum
    # (the job's time to first playable starts here). Results are taken in the old order so the
    # same fault raises the same error.
    with ThreadPoolExecutor(3, thread_name_prefix="probe") as pool:
        decoded = (
            pool.submit(_decode_first_frame, path, demuxer, index, timeout)
            if decode_check
            else None
        )
        mediainfo = pool.submit(_mediainfo_tracks, path, file_size, timeout, memory_limit)
        keyframes = pool.submit(keyframe_interval, path, demuxer, index, timeout=timeout)
        if decoded is not None:
            decoded.result()
        tracks = mediainfo.result()
        gop = keyframes.result()
    general, mi_video = tracks.get("General", {}), tracks.get("Video", {})
    if str(general.get("istruncated", "")).lower() == "yes":
        raise CorruptMedia("the file is truncated")

    duration_ms = _int(float(fmt.get("duration") or 0) * 1000) or _int(general.get("duration"))
    if not duration_ms:
        raise CorruptMedia("the duration cannot be determined")
    bitrate = (
        _int(fmt.get("bit_rate"))
        or _int(general.get("overall_bit_rate"))
        or round(file_size * 8000 / duration_ms)
    )
    # Average rate first: for variable frame rates it is the honest one; r_frame_rate is the
    # container's timebase guess and only a last resort.
    frame_rate = (
        _fraction(video.get("avg_frame_rate"))
        or _float(mi_video.get("frame_rate"))
        or _fraction(video.get("r_frame_rate"))
    )
    audio = audios[0] if audios else None
    info = MediaInfo(
        format=str(general.get("format") or demuxer),
        demuxer=demuxer,
        duration_ms=duration_ms,
        width=int(video["width"]),
        height=int(video["height"]),
        rotation=_rotation(video),
        sample_aspect=_fraction(str(video.get("sample_aspect_ratio", "")).replace(":", "/")) or 1.0,
        video_codec=str(video["codec_name"]),
        audio_codec=str(audio["codec_name"]) if audio and audio.get("codec_name") else None,
        bitrate=bitrate,
        video_bitrate=_int(video.get("bit_rate")) or _int(mi_video.get("bit_rate")),
        audio_bitrate=_int(audio.get("bit_rate")) if audio else None,
        frame_rate=round(frame_rate, 3),
        variable_frame_rate=str(mi_video.get("frame_rate_mode", "")).upper() == "VFR",
        has_video=True,
        has_audio=audio is not None,
        file_size=file_size,
        video_stream=int(video["index"]),
        audio_stream=int(audio["index"]) if audio is not None else None,
        pix_fmt=str(video["pix_fmt"]) if video.get("pix_fmt") else None,
        video_profile=str(video["profile"]) if video.get("profile") else None,
        video_level=_int(video.get("level")),
        audio_profile=str(audio["profile"]) if audio and audio.get("profile") else None,
        audio_channels=_int(audio.get("channels")) if audio else None,
        audio_sample_rate=_int(audio.get("sample_rate")) if audio else None,
        keyframe_interval=gop,
    )
    log.debug("media_probed", path=path, demuxer=demuxer, duration_ms=duration_ms)
    return info
