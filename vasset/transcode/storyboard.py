"""Storyboards (scrubbing previews), pure: tile interval and grid, the filter branch, WebVTT text.

A storyboard is a few JPEG sprite sheets of small tiles (one every 2 to 10 s, at most 100 per
sheet) and a WebVTT track whose cue i points at tile i: ``sheetN.jpg#xywh=x,y,w,h``. The tiles
come from the ladder's own decode: one more branch of its filtergraph (fps, scale, tile), no
second decode. Cue URIs are relative to the VTT, which lives beside its sheets, so a player that
fetches the VTT from a signed URL resolves the sheets under the same signature (see
vasset/playback/storyboard.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import msgspec

#: Tile width in pixels; the height follows the display aspect (even).
TILE_WIDTH = 160
MIN_INTERVAL = 2
MAX_INTERVAL = 10
#: Tiles wanted in a whole storyboard before the interval grows past 2 s.
TARGET_TILES = 100
MAX_COLUMNS = 10
MAX_ROWS = 10
VTT_NAME = "storyboard.vtt"
VTT_TYPE = "text/vtt"
#: The video's media_info key that holds its published storyboard (keys, layout, sheets).
MEDIA_INFO_KEY = "storyboard"


def interval_seconds(duration_ms: int) -> int:
    """Seconds between two tiles: 2 s up to 200 s of video, longer ones about 100 tiles, <= 10 s."""
    wanted = math.ceil(max(duration_ms, 0) / 1000 / TARGET_TILES)
    return min(MAX_INTERVAL, max(MIN_INTERVAL, wanted))


def tile_size(display_width: int, display_height: int, width: int = TILE_WIDTH) -> tuple[int, int]:
    """(w, h) of one tile: width wide (never upscaled), the display aspect, both even."""
    if display_width <= 0 or display_height <= 0:
        raise ValueError("display size must be positive")
    w = min(width, display_width)
    w -= w % 2
    h = max(2, round(w * display_height / display_width / 2) * 2)
    return max(2, w), h


class Sheet(msgspec.Struct, frozen=True):
    """One sprite sheet: its file name, pixel size and how many tiles it holds."""

    name: str
    width: int
    height: int
    tiles: int


class Layout(msgspec.Struct, frozen=True, kw_only=True):
    """Where every tile of a storyboard goes."""

    duration_ms: int
    interval: int  # seconds between tiles
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    count: int  # tiles in the whole storyboard

    @property
    def per_sheet(self) -> int:
        """Tiles one sheet holds (columns x rows, at most 100)."""
        return self.columns * self.rows

    def sheets(self) -> list[Sheet]:
        """Every sheet, in order (all the same size: the tile filter pads the last one)."""
        n = math.ceil(self.count / self.per_sheet)
        w, h = self.columns * self.tile_width, self.rows * self.tile_height
        return [
            Sheet(f"sheet{i}.jpg", w, h, min(self.per_sheet, self.count - i * self.per_sheet))
            for i in range(n)
        ]

    def cue(self, index: int) -> tuple[int, int, str, int, int]:
        """(start_ms, end_ms, sheet name, x, y) of tile index."""
        start = index * self.interval * 1000
        end = min(start + self.interval * 1000, self.duration_ms)
        sheet, cell = divmod(index, self.per_sheet)
        row, column = divmod(cell, self.columns)
        return start, end, f"sheet{sheet}.jpg", column * self.tile_width, row * self.tile_height


def plan_layout(duration_ms: int, display_width: int, display_height: int) -> Layout | None:
    """The storyboard of a video, or None when it is too short to have one (under 0.1 s)."""
    if duration_ms < 100:
        return None
    interval = interval_seconds(duration_ms)
    count = math.ceil(duration_ms / (interval * 1000))
    tw, th = tile_size(display_width, display_height)
    columns = min(MAX_COLUMNS, count)
    rows = min(MAX_ROWS, math.ceil(count / columns))
    return Layout(
        duration_ms=duration_ms,
        interval=interval,
        tile_width=tw,
        tile_height=th,
        columns=columns,
        rows=rows,
        count=count,
    )


def _timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def vtt_text(layout: Layout) -> str:
    """The WebVTT track: one cue per tile, ``sheetN.jpg#xywh=x,y,w,h`` relative to the VTT."""
    lines = ["WEBVTT", ""]
    for index in range(layout.count):
        start, end, sheet, x, y = layout.cue(index)
        lines.append(f"{_timestamp(start)} --> {_timestamp(end)}")
        lines.append(f"{sheet}#xywh={x},{y},{layout.tile_width},{layout.tile_height}")
        lines.append("")
    return "\n".join(lines)


class StoryboardRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A storyboard a ladder command should also write, and where."""

    layout: Layout
    out_dir: str
    quality: int = 4


class StoryboardOutputs(msgspec.Struct, frozen=True, kw_only=True):
    """The storyboard branch of a ladder command: graph text, output options, sheet files."""

    graph: list[str]
    args: list[str]
    layout: Layout
    # sheet name -> the file FFmpeg writes it to (file 0 is the opening frame, not a sheet)
    paths: dict[str, str]
    out_dir: str
    # The pad left for another branch (snapshots) when the source pad was shared.
    rest: str | None = None


def storyboard_outputs(
    source_label: str, request: StoryboardRequest, *, share: bool = False
) -> StoryboardOutputs:
    """Branch off a decoded pad: one tile every interval (fps, round up: the frame at the cue's
    start), scaled, tiled into sheets, written as a JPEG sequence.

    The tile filter emits a sheet only once it is full, and FFmpeg prints no progress until every
    output has started (the stall watchdog reads that progress), so the sequence opens with one
    frame at once: the first decoded frame, padded to the sheet's size (file 0, never published).
    share leaves a third copy of the pad (``rest``) for another branch.
    """
    layout = request.layout
    tw, th = layout.tile_width, layout.tile_height
    sw, sh = layout.columns * tw, layout.rows * th
    rest = "sb_rest" if share else None
    graph = [
        f"[{source_label}]split={3 if share else 2}[sb_open][sb_all]"
        + (f"[{rest}]" if rest else ""),
        f"[sb_open]trim=end_frame=1,scale={tw}:{th}:flags=bicubic,setsar=1,"
        f"pad={sw}:{sh}:0:0:black[sb_first]",
        f"[sb_all]fps=fps=1/{layout.interval}:round=up,scale={tw}:{th}:flags=bicubic,setsar=1,"
        f"tile={layout.columns}x{layout.rows}:color=black[sb_sheets]",
        # concat starts the sheets at the opening frame's own instant: number the frames instead
        # (the image sequence names files by order; the instants only have to increase).
        "[sb_first][sb_sheets]concat=n=2:v=1:a=0,settb=1/1000,setpts=N[sb_out]",
    ]
    out = Path(request.out_dir)
    # The millisecond clock of those instants (the tile output's own frame rate would merge them).
    args = ["-map", "[sb_out]", "-fps_mode:v", "passthrough", "-enc_time_base:v", "1:1000"]
    args += ["-q:v", str(request.quality)]
    args += ["-an", "-sn", "-dn", "-map_metadata", "-1", "-f", "image2", "-start_number", "0"]
    args.append(os.fspath(out / "board_%04d.jpg"))
    paths = {
        sheet.name: os.fspath(out / f"board_{index + 1:04d}.jpg")
        for index, sheet in enumerate(layout.sheets())
    }
    return StoryboardOutputs(
        graph=graph, args=args, layout=layout, paths=paths, out_dir=os.fspath(out), rest=rest
    )
