"""Watermark and text overlays as filtergraph pieces (pure: strings and argv only).

Overlays are drawn once, on the full-size decode, before the ladder's split: every rendition
and every snapshot taken from that decode shows them, scaled with the picture. The watermark
is a second FFmpeg input (a PNG the pipeline copied into the job's workdir; a single frame that
``overlay`` repeats to the end); text is read by ``drawtext`` from a file the pipeline wrote
(``textfile=``, ``expansion=none``), so no user text ever appears in the filtergraph. What
does appear (paths, numbers, colours) is escaped for both levels FFmpeg parses: the filter's
option list (``\\ ' :``) and the graph (``\\ ' [ ] , ;``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import msgspec

from vasset.transcode.ffargs import PROTOCOLS, whitelist
from vasset.transcode.options import Position

#: Label of the scaled, faded watermark inside the graph.
WATERMARK_PAD = "wm"
_HEX_COLOUR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})\Z")
# Spaces too: FFmpeg trims unescaped whitespace at both ends of every token it reads.
_OPTION_SPECIALS = "\\': "
_GRAPH_SPECIALS = "\\'[],; "


class WatermarkPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A watermark in pixels of the decoded frame."""

    path: str  # local PNG
    width: int  # even, in frame pixels
    margin: int
    position: Position
    opacity: float


class TextPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Text in pixels of the decoded frame; the text itself is in textfile."""

    textfile: str
    fontfile: str
    size: int
    margin: int
    position: Position
    colour: str  # #RRGGBB or #RRGGBBAA
    start_ms: int | None = None
    end_ms: int | None = None


class OverlayPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything drawn over the decode (at least one of the two)."""

    watermark: WatermarkPlan | None = None
    text: TextPlan | None = None


def escape_option(value: str) -> str:
    """A value inside one filter's option list (first level: ``\\``, ``'``, ``:``, space)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"control character in filter option value {value!r}")
    return "".join("\\" + c if c in _OPTION_SPECIALS else c for c in value)


def escape_filter(text: str) -> str:
    """One whole ``name=options`` inside the filtergraph (second level)."""
    return "".join("\\" + c if c in _GRAPH_SPECIALS else c for c in text)


def filter_text(name: str, options: Sequence[tuple[str, str]]) -> str:
    """``name=k=v:k=v`` with every value escaped for both levels."""
    body = ":".join(f"{key}={escape_option(value)}" for key, value in options)
    return escape_filter(f"{name}={body}" if body else name)


def _number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") or "0"


def _xy(
    position: Position, margin: int, box: tuple[str, str], frame: tuple[str, str]
) -> tuple[str, str]:
    """x and y expressions that put a box at position with margin pixels around it."""
    m = str(int(margin))
    (w, h), (fw, fh) = box, frame
    x = {"left": m, "right": f"{fw}-{w}-{m}", "center": f"({fw}-{w})/2"}
    y = {"top": m, "bottom": f"{fh}-{h}-{m}", "center": f"({fh}-{h})/2"}
    if position == "center":
        return x["center"], y["center"]
    vertical, horizontal = position.split("-")
    return x[horizontal], y[vertical]


def colour_value(colour: str) -> str:
    """FFmpeg's 0xRRGGBB[AA] form of a validated #hex colour."""
    if not _HEX_COLOUR.match(colour):
        raise ValueError(f"not a #RRGGBB[AA] colour: {colour!r}")
    return "0x" + colour[1:]


def drawtext_filter(text: TextPlan) -> str:
    """The drawtext filter (text from textfile, never expanded)."""
    x, y = _xy(text.position, text.margin, ("tw", "th"), ("w", "h"))
    options = [
        ("fontfile", text.fontfile),
        ("textfile", text.textfile),
        ("expansion", "none"),
        ("fontsize", str(int(text.size))),
        ("fontcolor", colour_value(text.colour)),
        ("x", x),
        ("y", y),
    ]
    if text.start_ms is not None or text.end_ms is not None:
        start = (text.start_ms or 0) / 1000
        window = f"gte(t,{_number(start)})"
        if text.end_ms is not None:
            window = f"between(t,{_number(start)},{_number(text.end_ms / 1000)})"
        options.append(("enable", window))
    return filter_text("drawtext", options)


def input_args(plan: OverlayPlan) -> list[str]:
    """Extra FFmpeg inputs (after the source's): the watermark PNG, file protocol only."""
    if plan.watermark is None:
        return []
    return [
        "-protocol_whitelist",
        PROTOCOLS,
        "-format_whitelist",
        whitelist(["png_pipe"]),
        "-f",
        "png_pipe",
        "-i",
        os.fspath(plan.watermark.path),
    ]


def apply(graph: list[str], video: str, plan: OverlayPlan, input_index: int = 1) -> list[str]:
    """The graph with the overlays inserted right after the decode's input pad ``[video]``.

    graph is what the ladder's scale chain built: its first line starts with ``[video]``.
    """
    head = f"[{video}]"
    if not graph or not graph[0].startswith(head):
        raise ValueError(f"the graph does not start at [{video}]")
    rest = graph[0][len(head) :]
    lines: list[str] = []
    chain: list[str] = []
    inputs = head
    if plan.watermark is not None:
        wm = plan.watermark
        fade = f",{filter_text('colorchannelmixer', [('aa', _number(wm.opacity))])}"
        lines.append(
            f"[{input_index}:v]"
            + filter_text("scale", [("w", str(int(wm.width))), ("h", "-2")])
            + ","
            + filter_text("format", [("pix_fmts", "rgba")])
            + (fade if wm.opacity < 1 else "")
            + f"[{WATERMARK_PAD}]"
        )
        x, y = _xy(wm.position, wm.margin, ("overlay_w", "overlay_h"), ("main_w", "main_h"))
        inputs += f"[{WATERMARK_PAD}]"
        # One PNG frame: repeated to the end of the video (eof_action's default, made explicit).
        chain.append(filter_text("overlay", [("x", x), ("y", y), ("eof_action", "repeat")]))
    if plan.text is not None:
        chain.append(drawtext_filter(plan.text))
    if not chain:
        return list(graph)
    return [*lines, inputs + ",".join(chain) + "," + rest, *graph[1:]]


def plan_overlays(
    frame_width: int,
    frame_height: int,
    *,
    watermark_path: str | None = None,
    wm_position: Position = "top-right",
    wm_margin: float = 0.02,
    wm_opacity: float = 1.0,
    wm_scale: float = 0.15,
    text_file: str | None = None,
    font_file: str | None = None,
    text_position: Position = "bottom-left",
    text_size: float = 0.05,
    text_colour: str = "#ffffff",
    text_start_ms: int | None = None,
    text_end_ms: int | None = None,
) -> OverlayPlan | None:
    """Overlay sizes in pixels of a frame_width x frame_height decode (relative options in)."""
    watermark = text = None
    if watermark_path is not None:
        width = max(2, round(frame_width * wm_scale / 2) * 2)
        watermark = WatermarkPlan(
            path=watermark_path,
            width=width,
            margin=round(frame_width * wm_margin),
            position=wm_position,
            opacity=wm_opacity,
        )
    if text_file is not None:
        if font_file is None:
            raise ValueError("text needs a font file")
        text = TextPlan(
            textfile=text_file,
            fontfile=font_file,
            size=max(8, round(frame_height * text_size)),
            margin=round(frame_width * 0.02),
            position=text_position,
            colour=text_colour,
            start_ms=text_start_ms,
            end_ms=text_end_ms,
        )
    if watermark is None and text is None:
        return None
    return OverlayPlan(watermark=watermark, text=text)
