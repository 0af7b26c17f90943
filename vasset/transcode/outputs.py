"""Checks of FFmpeg's outputs before they are published: faststart MP4s, complete HLS variants."""

from __future__ import annotations

import os
import re

from vasset.transcode.commands import TranscodeCommand
from vasset.transcode.probe import InvalidOutput


def mp4_boxes(path: str | os.PathLike[str]) -> list[str]:
    """Top-level ISO BMFF box types in file order (``moov`` before ``mdat`` means faststart)."""
    boxes: list[str] = []
    with open(path, "rb") as f:
        size_total = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + 8 <= size_total:
            f.seek(offset)
            header = f.read(16)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1 and len(header) == 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = size_total - offset
            if size < 8:
                raise InvalidOutput(f"malformed MP4 box at offset {offset}")
            boxes.append(kind)
            offset += size
    return boxes


def _check_variant(playlist: str) -> int:
    """Number of segments of a finished VOD playlist whose files all exist."""
    try:
        with open(playlist, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise InvalidOutput(f"HLS playlist missing: {os.path.basename(playlist)}") from exc
    if "#EXT-X-ENDLIST" not in lines:
        raise InvalidOutput(f"HLS playlist not finished: {os.path.basename(playlist)}")
    base = os.path.dirname(playlist)
    uris = [line for line in lines if not line.startswith("#")]
    uris += re.findall(r'#EXT-X-MAP:URI="([^"]+)"', "\n".join(lines))
    for uri in uris:
        if "/" in uri or uri.startswith(".") or not os.path.getsize(os.path.join(base, uri)):
            raise InvalidOutput(f"HLS segment missing or empty: {uri}")
    segments = sum(1 for line in lines if line.startswith("#EXTINF"))
    if not segments:
        raise InvalidOutput(f"HLS playlist has no segments: {os.path.basename(playlist)}")
    return segments


def verify_outputs(command: TranscodeCommand) -> None:
    """Raise InvalidOutput unless every MP4 is faststart and every HLS variant is complete."""
    for out in command.outputs:
        try:
            boxes = mp4_boxes(out.mp4_path)
        except OSError as exc:
            raise InvalidOutput(f"rendition {out.name} was not written") from exc
        if "moov" not in boxes or "mdat" not in boxes:
            raise InvalidOutput(f"rendition {out.name} is incomplete")
        if boxes.index("moov") > boxes.index("mdat"):
            raise InvalidOutput(f"rendition {out.name} is not faststart")
        if out.hls_playlist is not None:
            try:
                _check_variant(out.hls_playlist)
            except FileNotFoundError as exc:
                raise InvalidOutput(f"HLS segment missing: {exc.filename}") from exc
