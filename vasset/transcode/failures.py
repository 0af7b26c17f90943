"""What a failed attempt tells the client: a stable code, a clean message, and permanence."""

from __future__ import annotations

import re

from vasset import errors
from vasset.transcode.probe import MediaError

# FFmpeg names its contexts by heap address ("[h264 @ 0x56286c52d580]"), and errors name
# worker paths: neither is the client's business, and they make equal errors look different.
_HEAP_ADDRESS = re.compile(r"\s*@\s*0x[0-9a-fA-F]+|\b0x[0-9a-fA-F]{9,}\b")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:[^\s/'\"\[\]:,;()]+/)+([^\s/'\"\[\]:,;()]*)")


def public_error(text: str) -> str:
    """Error text fit for /video/status: no heap addresses, paths cut to their file names."""
    text = _HEAP_ADDRESS.sub("", text)
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "(path)", text)


def classify(exc: BaseException) -> tuple[str, bool]:
    """(error text, permanent) for a failed attempt; the text is stored and served."""
    message, permanent = _describe(exc)
    return public_error(message), permanent


def _describe(exc: BaseException) -> tuple[str, bool]:
    if isinstance(exc, MediaError):  # FfmpegError included: it sets code and permanent
        return f"{exc.code}: {exc}", exc.permanent
    if isinstance(exc, errors.VideoNotFound):
        return f"{errors.VideoNotFound.code}: the video was deleted", True
    if isinstance(exc, errors.VassetError):
        return f"{exc.code}: {exc.message}", exc.status < 500
    # VassetError itself stands for InternalError.
    return f"{errors.VassetError.code}: {type(exc).__name__}: {exc}", False
