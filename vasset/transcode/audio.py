"""The audio-only rendition, pure: FFmpeg output options and its HLS master entry.

When the source has audio, the ladder's FFmpeg run also writes one AAC-LC stereo stream (the
same audio input, no video) through the tee muxer to a faststart M4A and an audio-only HLS
variant. The master lists that variant last, as an audio-only EXT-X-STREAM-INF (CODECS
"mp4a.40.2", no RESOLUTION), not as an AUDIO group: the video variants keep their muxed audio
(an AUDIO group would need demuxed, video-only variants); hls.js drops audio-only variants from a
master that also has video ones, and Safari starts on the first variant listed (a video one) and
only falls to the audio-only one when the bandwidth cannot carry any video.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

NAME = "audio"
CODECS = "mp4a.40.2"
DEFAULT_BITRATE = 128_000
M4A_TYPE = "audio/mp4"


class AudioRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An audio-only rendition a ladder command should also write."""

    out_dir: str
    bitrate: int = DEFAULT_BITRATE
    hls: bool = True
    hls_time: int = 4
    copy: bool = False  # the source's AAC as it is (bitrate is then the source's)


class AudioOutput(msgspec.Struct, frozen=True, kw_only=True):
    """Where the audio-only rendition is written, and what the master says about it."""

    m4a_path: str
    bitrate: int
    hls_dir: str | None = None
    hls_playlist: str | None = None
    codecs: str = CODECS

    @property
    def bandwidth(self) -> int:
        """Peak bits/s for BANDWIDTH (AAC is near constant; ~10 % container overhead)."""
        return round(self.bitrate * 1.1)


def _tee_path(path: Path) -> str:
    # Same rule as commands._tee_path: vasset chooses these paths, so refuse rather than escape.
    text = os.fspath(path)
    if any(char in text for char in "\\:|[]'\";="):
        raise ValueError(f"output path {text!r} contains a character the tee muxer reserves")
    return text


def audio_output_args(
    audio_map: str, request: AudioRequest, hls_root: Path | None
) -> tuple[list[str], AudioOutput]:
    """FFmpeg output options (map, AAC encoder, tee to M4A and HLS) and what they write."""
    m4a = Path(request.out_dir) / f"{NAME}.m4a"
    if request.copy:
        args = ["-map", audio_map, "-vn", "-c:a", "copy"]
    else:
        args = ["-map", audio_map, "-vn", "-c:a", "aac", "-b:a", str(request.bitrate)]
        args += ["-ac", "2", "-ar", "48000"]
    args += ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]
    slaves = [f"[f=ipod:movflags=+faststart:onfail=abort]{_tee_path(m4a)}"]
    hls_dir = hls_playlist = None
    if request.hls and hls_root is not None:
        folder = hls_root / NAME
        hls_dir, hls_playlist = os.fspath(folder), os.fspath(folder / "index.m3u8")
        opts = [
            "f=hls",
            "onfail=abort",
            f"hls_time={request.hls_time}",
            # Always VOD: this variant is published whole at the end, never progressively.
            "hls_playlist_type=vod",
            "hls_flags=independent_segments",
            "hls_segment_type=fmp4",
            f"hls_segment_filename={_tee_path(folder / 'seg_%05d.m4s')}",
            "hls_fmp4_init_filename=init.mp4",
        ]
        slaves.append(f"[{':'.join(opts)}]{_tee_path(folder / 'index.m3u8')}")
    args += ["-f", "tee", "|".join(slaves)]
    output = AudioOutput(
        m4a_path=os.fspath(m4a),
        bitrate=request.bitrate,
        hls_dir=hls_dir,
        hls_playlist=hls_playlist,
    )
    return args, output


def master_entry(output: AudioOutput) -> list[str]:
    """The master playlist lines of the audio-only variant (URI relative to the hls root)."""
    if output.hls_playlist is None:
        return []
    attrs = f'BANDWIDTH={output.bandwidth},AVERAGE-BANDWIDTH={output.bitrate},CODECS="{CODECS}"'
    return ["#EXT-X-STREAM-INF:" + attrs, f"{NAME}/index.m3u8"]
