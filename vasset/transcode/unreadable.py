"""Why FFmpeg could not open a file: a refused format, a still image, corrupt, or not media."""

from __future__ import annotations

import re

from vasset.transcode.ffargs import IMAGE_DEMUXERS
from vasset.transcode.media_errors import CorruptMedia, NotAVideo, UnsupportedMedia

# File starts that identify a media container we know (for "corrupt" versus "not media").
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "RIFF (AVI/WAV)"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV"),
    (0, b"ID3", "MP3"),
    (0, b"\x89PNG", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
)
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_WHITELIST_RE = re.compile(r"\[(?P<name>[^\]@]+?) @ 0x[0-9a-f]+\] Format not on whitelist")


def sniff(path: str) -> str | None:
    """The container a file's first bytes claim, or None."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[4:8] in _ISO_BOXES:
        return "MPEG-4/QuickTime"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def last_line(text: str, path: str) -> str:
    """Last diagnostic line, without the (server-side) path FFmpeg prefixes it with."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1].replace(f"{path}: ", "") if lines else "no diagnostics"
    return line[:300]


def is_image_demuxer(name: str) -> bool:
    """Whether an FFmpeg demuxer reads still images."""
    return name.startswith("image2") or name.endswith("_pipe") or name in IMAGE_DEMUXERS


def raise_unreadable(path: str, stderr: str) -> None:
    """Classify a file FFmpeg could not open."""
    refused = _WHITELIST_RE.search(stderr)
    if refused:
        name = refused.group("name")
        if is_image_demuxer(name):
            raise NotAVideo("the file is a still image")
        raise UnsupportedMedia(f"the {name} format is not accepted")
    if "Protocol not on whitelist" in stderr:
        raise UnsupportedMedia("the file refers to other files or URLs, which is not accepted")
    claimed = sniff(path)
    reason = last_line(stderr, path)
    if claimed is not None:
        raise CorruptMedia(f"the file looks like {claimed} but cannot be read: {reason}")
    raise UnsupportedMedia(f"not a media file FFmpeg can read: {reason}")
