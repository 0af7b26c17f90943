"""Decoding and sanitizing the client's file name (fn): user text never reaches a key."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from vasset.errors import InvalidParameter

MAX_NAME_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode_file_name(fn: str) -> str:
    """Decode Base64 (standard or URL-safe, padding optional) of a UTF-8 name."""
    # A '+' sent unencoded arrives as a space through form decoding: put it back.
    cleaned = fn.strip().replace(" ", "+")
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
    name = _CONTROL.sub("", name)
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
