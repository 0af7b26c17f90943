"""Decoding and sanitizing the client's file name (fn): user text never reaches a key."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from vasset.errors import InvalidParameter

MAX_NAME_CHARS = 200
#: Categories never kept in a name: controls, invisible format characters (bidi overrides,
#: zero-width spaces, BOM: they make a name display as something it is not) and line breaks.
_DROPPED = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ZWJ = "\u200d"
_VS16 = "\ufe0f"


def decode_file_name(fn: str) -> str:
    """Decode Base64 (standard or URL-safe, padding optional) of a UTF-8 name."""
    # A '+' sent unencoded arrives as a space through form decoding: put it back before
    # stripping, or a leading or trailing '+' would be lost.
    cleaned = fn.replace(" ", "+").strip()
    if not cleaned or len(cleaned) > 64 * 1024:
        raise InvalidParameter("fn must be Base64 of the UTF-8 file name", parameter="fn")
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned, validate=True)
        name = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidParameter("fn must be Base64 of the UTF-8 file name", parameter="fn") from None
    return sanitize_file_name(name)


def sanitize_file_name(name: str) -> str:
    """Keep the last path component, drop control characters, cap the length."""
    name = unicodedata.normalize("NFC", name)
    name = _visible(name)
    name = re.split(r"[\\/]", name)[-1].strip()
    if name in ("", ".", ".."):
        name = "untitled"
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME_CHARS]
    return name


def _emoji_side(char: str) -> bool:
    """Whether char can sit next to a zero-width joiner inside an emoji sequence."""
    return char == _VS16 or unicodedata.category(char) in ("So", "Sk")


def _visible(name: str) -> str:
    """Drop control, format and line-break characters, keeping joiners inside emoji."""
    kept: list[str] = []
    for i, char in enumerate(name):
        # U+200D glues emoji sequences (family, profession): keep it only between emoji.
        if unicodedata.category(char) not in _DROPPED or (
            char == _ZWJ
            and kept
            and _emoji_side(kept[-1])
            and i + 1 < len(name)
            and unicodedata.category(name[i + 1]) == "So"
        ):
            kept.append(char)
    return "".join(kept)
