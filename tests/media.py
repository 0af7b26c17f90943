"""Small media files for tests, generated with FFmpeg's lavfi sources and cached per directory.

Every function takes a directory and returns the path of its clip, building it only when it is
missing; files are written under a temporary name and renamed, so pytest-xdist workers that share
a directory never see half-written clips. Wire them into fixtures with a session-scoped tmp dir.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FFMPEG = "ffmpeg"
_BASE = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def _ffmpeg(args: Sequence[str | os.PathLike[str]]) -> None:
    subprocess.run([*_BASE, *map(str, args)], check=True, stdin=subprocess.DEVNULL, timeout=600)


def _cached(directory: str | os.PathLike[str], name: str, build: Callable[[Path], None]) -> Path:
    """Path of directory/name, built by build(tmp_path) and linked into place if missing."""
    target = Path(directory) / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the extension last: FFmpeg picks the muxer from it.
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    try:
        build(tmp)
        # The first worker's file wins: replacing it could swap a file another worker is
        # reading (the probe compares its size with what MediaInfo read) for a different build.
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return target


def shared_dir(tmp_path_factory: Any) -> Path:
    """A clip directory shared by all xdist workers of one run (pass pytest's tmp_path_factory)."""
    base = Path(tmp_path_factory.getbasetemp())
    # Under xdist each worker's basetemp is a child of the run's; the parent is common to all.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory = root / "vasset-media"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _video_src(size: str, rate: int | str = 25) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]


def _audio_src(freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100"]


_X264_FAST = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-b:a", "64k"]


def _av_clip(
    out: Path, size: str, seconds: float, *, audio: bool = True, extra: Sequence[str] = ()
) -> None:
    args: list[str] = [*_video_src(size)]
    if audio:
        args += _audio_src()
    args += ["-t", str(seconds), *_X264_FAST]
    if audio:
        args += [*_AAC, "-shortest"]
    _ffmpeg([*args, *extra, out])


def landscape(directory: str | os.PathLike[str]) -> Path:
    """320x180, 3 s, 25 fps, H.264 + AAC, moov at the end (as cameras write it)."""
    return _cached(directory, "landscape.mp4", lambda p: _av_clip(p, "320x180", 3))


def portrait_rotated(directory: str | os.PathLike[str]) -> Path:
    """Stored 320x180 with a display matrix that turns it 90 degrees clockwise (shown 180x320)."""

    def build(out: Path) -> None:
        # FFmpeg 5.1's mov muxer turns the legacy `rotate` tag into a display matrix on remux;
        # its tag is counter-clockwise, so 270 here is the phone-style "rotate 90 clockwise".
        _ffmpeg(["-i", landscape(directory), "-c", "copy", "-metadata:s:v:0", "rotate=270", out])

    return _cached(directory, "portrait_rotated.mp4", build)


def odd_size(directory: str | os.PathLike[str]) -> Path:
    """321x241 (odd on both sides), 2 s, with audio; encoded 4:4:4 since 4:2:0 needs even sizes."""

    def build(out: Path) -> None:
        # testsrc2 rounds its size to even numbers; crop after converting to 4:4:4.
        args = [*_video_src("322x242"), *_audio_src(), "-t", "2"]
        args += ["-vf", "format=yuv444p,crop=321:241:0:0"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p"]
        _ffmpeg([*args, *_AAC, "-shortest", out])

    return _cached(directory, "odd_size.mp4", build)


def no_audio(directory: str | os.PathLike[str]) -> Path:
    """320x180, 2 s, video only."""
    return _cached(directory, "no_audio.mp4", lambda p: _av_clip(p, "320x180", 2, audio=False))


def audio_only(directory: str | os.PathLike[str]) -> Path:
    """An AAC .m4a with no video stream."""
    return _cached(
        directory, "audio_only.m4a", lambda p: _ffmpeg([*_audio_src(), "-t", "2", *_AAC, p])
    )


def audio_with_cover(directory: str | os.PathLike[str]) -> Path:
    """An MP3 whose only picture is attached cover art (a video stream that is not a video)."""

    def build(out: Path) -> None:
        cover = image(directory)
        args = [*_audio_src(), "-i", cover, "-t", "2", "-map", "0:a", "-map", "1:v"]
        args += ["-c:a", "libmp3lame", "-b:a", "64k", "-c:v", "copy"]
        _ffmpeg([*args, "-disposition:v", "attached_pic", "-id3v2_version", "3", out])

    return _cached(directory, "audio_with_cover.mp3", build)


def image(directory: str | os.PathLike[str]) -> Path:
    """A single 64x64 PNG."""
    return _cached(
        directory, "image.png", lambda p: _ffmpeg([*_video_src("64x64"), "-frames:v", "1", p])
    )


def variable_frame_rate(directory: str | os.PathLike[str]) -> Path:
    """3 s that run at 30 fps for one second and 10 fps after it (timestamps kept as they are)."""

    def build(out: Path) -> None:
        args = [*_video_src("320x180", 30), *_audio_src(), "-t", "3"]
        args += ["-vf", r"select='lt(t\,1)+not(mod(n\,3))'", "-fps_mode:v", "vfr"]
        _ffmpeg([*args, *_X264_FAST, *_AAC, "-shortest", out])

    return _cached(directory, "vfr.mp4", build)


def _truncate(source: Path, out: Path, fraction: float = 0.5) -> None:
    data = source.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])


def truncated(directory: str | os.PathLike[str]) -> Path:
    """A faststart MP4 cut in half: the index is whole, half of the media data is missing."""

    def build(out: Path) -> None:
        whole = Path(directory) / f".tmp-{os.getpid()}-faststart.mp4"
        try:
            _av_clip(whole, "320x180", 3, extra=["-movflags", "+faststart"])
            _truncate(whole, out)
        finally:
            whole.unlink(missing_ok=True)

    return _cached(directory, "truncated.mp4", build)


def missing_moov(directory: str | os.PathLike[str]) -> Path:
    """An MP4 with its index at the end, cut in half: no moov at all."""
    return _cached(directory, "missing_moov.mp4", lambda p: _truncate(landscape(directory), p))


def text_file(directory: str | os.PathLike[str]) -> Path:
    """A plain text file named .mp4."""

    def build(out: Path) -> None:
        out.write_text("this is not a video, only some text that claims to be one\n" * 20)

    return _cached(directory, "text.mp4", build)


def hls_disguised(directory: str | os.PathLike[str]) -> Path:
    """An HLS playlist named .mp4 whose segment is another local file (a read-anything trick)."""
    target = landscape(directory).resolve()

    def build(out: Path) -> None:
        out.write_text(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n"
            f"#EXTINF:3.0,\n{target}\n#EXT-X-ENDLIST\n"
        )

    return _cached(directory, "hls_disguised.mp4", build)


def bench_1080p(
    directory: str | os.PathLike[str], seconds: int = 20, *, camera_like: bool = False
) -> Path:
    """1920x1080 30 fps with audio for benches; ultrafast and low bitrate, so it builds quickly.

    camera_like adds film grain and encodes High profile (CABAC, B-frames) at 12 Mbit/s with a
    2 s GOP: decoding then costs what a phone or camera file costs, which is what one decode
    feeding every rendition saves.
    """

    def build(out: Path) -> None:
        args = [*_video_src("1920x1080", 30), *_audio_src(), "-t", str(seconds)]
        if camera_like:
            args += ["-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "veryfast"]
            args += ["-profile:v", "high", "-pix_fmt", "yuv420p", "-g", "60", "-b:v", "12M"]
        else:
            args += [*_X264_FAST, "-b:v", "3M"]
        _ffmpeg([*args, *_AAC, "-shortest", out])

    suffix = "_camera" if camera_like else ""
    return _cached(directory, f"bench_1080p_{seconds}s{suffix}.mp4", build)


def bench_720p(directory: str | os.PathLike[str], seconds: int = 300) -> Path:
    """1280x720 25 fps with audio (5 minutes by default) for snapshot benches; 2 s GOP."""

    def build(out: Path) -> None:
        args = [*_video_src("1280x720", 25), *_audio_src(), "-t", str(seconds), *_X264_FAST]
        _ffmpeg([*args, "-g", "50", "-b:v", "1M", *_AAC, "-shortest", out])

    return _cached(directory, f"bench_720p_{seconds}s.mp4", build)


ALL_SMALL: dict[str, Callable[[str | os.PathLike[str]], Path]] = {
    "landscape": landscape,
    "portrait_rotated": portrait_rotated,
    "odd_size": odd_size,
    "no_audio": no_audio,
    "audio_only": audio_only,
    "audio_with_cover": audio_with_cover,
    "image": image,
    "variable_frame_rate": variable_frame_rate,
    "truncated": truncated,
    "missing_moov": missing_moov,
    "text_file": text_file,
    "hls_disguised": hls_disguised,
}
