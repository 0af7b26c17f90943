"""The overlay query parameters of the transcode calls: parsed once into TranscodeOptions.

``watermark=ASSET_ID`` with ``wm_position``, ``wm_margin``, ``wm_opacity``, ``wm_scale``;
``text=`` (Base64 of UTF-8) with ``text_position``, ``text_size``, ``text_colour``,
``text_start``, ``text_end`` (ms). Ranges are checked by msgspec (InvalidParameter naming the
parameter); what one field cannot say alone (the text's bytes, start before end, wm_* without
a watermark) is checked here.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

import msgspec

from vasset import errors
from vasset.http.params import Id
from vasset.transcode.options import Position, TextOptions, WatermarkOptions

#: Longest text (characters after decoding) and most lines an overlay may have.
MAX_TEXT_CHARS = 200
MAX_TEXT_LINES = 4
#: Named colours accepted besides #RRGGBB / #RRGGBBAA (stored as hex).
COLOURS = {
    "white": "#ffffff",
    "black": "#000000",
    "red": "#ff0000",
    "green": "#00ff00",
    "blue": "#0000ff",
    "yellow": "#ffff00",
    "cyan": "#00ffff",
    "magenta": "#ff00ff",
    "gray": "#808080",
    "grey": "#808080",
    "orange": "#ffa500",
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{8})\Z")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}\Z")

Ms = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
_POSITION = "top-left, top-right, bottom-left, bottom-right or center"


def _invalid(name: str, why: str) -> errors.InvalidParameter:
    return errors.InvalidParameter(f"invalid {name}: {why}", parameter=name)


def decode_text(value: str) -> str:
    """Base64 (standard or URL-safe) of UTF-8 text, length-limited, no control characters."""
    if not _BASE64.match(value):
        raise _invalid("text", "not Base64")
    stripped = value.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid("text", "not Base64 of UTF-8 text") from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise _invalid("text", "empty")
    if len(text) > MAX_TEXT_CHARS or text.count("\n") >= MAX_TEXT_LINES:
        raise _invalid("text", f"at most {MAX_TEXT_CHARS} characters on {MAX_TEXT_LINES} lines")
    if any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in text):
        raise _invalid("text", "control characters other than newline")
    return text


def colour(value: str) -> str:
    """#rrggbb[aa] from a hex colour or one of COLOURS."""
    named = COLOURS.get(value.lower())
    if named is not None:
        return named
    if m := _HEX.match(value):
        return "#" + m.group(1).lower()
    raise _invalid("text_colour", f"use #RRGGBB, #RRGGBBAA or one of {', '.join(COLOURS)}")


class OverlayParams(msgspec.Struct, kw_only=True):
    """Watermark and text overlay parameters (shared by the transcode calls)."""

    watermark: Annotated[
        Id | None, msgspec.Meta(description="asset_id of a watermark image (PUT /video/assets)")
    ] = None
    wm_position: Annotated[
        Position | None, msgspec.Meta(description=f"watermark position: {_POSITION}")
    ] = None
    wm_margin: (
        Annotated[
            float,
            msgspec.Meta(ge=0, le=0.5, description="margin around it, fraction of the video width"),
        ]
        | None
    ) = None
    wm_opacity: (
        Annotated[float, msgspec.Meta(gt=0, le=1, description="opacity, 0 (exclusive) to 1")] | None
    ) = None
    wm_scale: (
        Annotated[
            float,
            msgspec.Meta(ge=0.01, le=1, description="watermark width, fraction of the video width"),
        ]
        | None
    ) = None
    text: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=1100,  # Base64 of MAX_TEXT_CHARS 4-byte characters
                description=f"Base64 of UTF-8 text drawn over the video (at most {MAX_TEXT_CHARS}"
                f" characters, {MAX_TEXT_LINES} lines; drawn literally)",
            ),
        ]
        | None
    ) = None
    text_position: Annotated[
        Position | None, msgspec.Meta(description=f"text position: {_POSITION}")
    ] = None
    text_size: (
        Annotated[
            float,
            msgspec.Meta(ge=0.01, le=0.5, description="font size, fraction of the video height"),
        ]
        | None
    ) = None
    text_colour: (
        Annotated[
            str,
            msgspec.Meta(max_length=16, description="#RRGGBB, #RRGGBBAA or white, black, red, ..."),
        ]
        | None
    ) = None
    text_start: Annotated[Ms | None, msgspec.Meta(description="ms the text appears at")] = None
    text_end: Annotated[Ms | None, msgspec.Meta(description="ms the text disappears at")] = None

    def overlay_options(self) -> dict[str, Any]:
        """watermark= and text= of TranscodeOptions (absent ones left out)."""
        out: dict[str, Any] = {}
        wm_names = ("wm_position", "wm_margin", "wm_opacity", "wm_scale")
        wm_given = [n for n in wm_names if getattr(self, n) is not None]
        if self.watermark is not None:
            given = {n.removeprefix("wm_"): getattr(self, n) for n in wm_given}
            out["watermark"] = WatermarkOptions(asset_id=self.watermark, **given)
        elif wm_given:
            raise _invalid(wm_given[0], "needs watermark=ASSET_ID")
        text_names = ("text_position", "text_size", "text_colour", "text_start", "text_end")
        text_given = [n for n in text_names if getattr(self, n) is not None]
        if self.text is None:
            if text_given:
                raise _invalid(text_given[0], "needs text=")
            return out
        if (
            self.text_start is not None
            and self.text_end is not None
            and self.text_end <= self.text_start
        ):
            raise _invalid("text_end", "must be after text_start")
        fields: dict[str, Any] = {"text": decode_text(self.text)}
        if self.text_position is not None:
            fields["position"] = self.text_position
        if self.text_size is not None:
            fields["size"] = self.text_size
        if self.text_colour is not None:
            fields["colour"] = colour(self.text_colour)
        fields["start_ms"], fields["end_ms"] = self.text_start, self.text_end
        out["text"] = TextOptions(**fields)
        return out
