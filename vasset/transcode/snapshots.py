"""FFmpeg command lines for snapshots (pure: argv lists only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import msgspec

from vasset.transcode.ffargs import common_args, input_args


def snapshot_times(duration_ms: int, count: int) -> list[int]:
    """Evenly spaced instants in ms, centred in equal slices (never the first or last frame)."""
    if count <= 0 or duration_ms <= 0:
        return []
    return [int(duration_ms * (2 * i + 1) / (2 * count)) for i in range(count)]


class SnapshotCommand(msgspec.Struct, frozen=True, kw_only=True):
    """One FFmpeg run that writes one JPEG per time."""

    argv: list[str]
    times_ms: list[int]
    paths: list[str]
    width: int
    height: int


def build_snapshots(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    times_ms: Sequence[int],
    *,
    width: int,
    height: int,
    demuxer: str | None = None,
    video_stream: int | None = None,
    quality: int = 3,
    decoder_threads: int = 1,
    name: str = "snapshot_{index:02d}.jpg",
    loglevel: str = "warning",
) -> SnapshotCommand:
    """Snapshots with fast seek: one process, one input per time, each with -ss before -i.

    width x height is the display size (see ladder.snapshot_size): FFmpeg autorotates before
    the scaler, so these are the dimensions of the written JPEGs. A time past the last frame
    writes no file; callers keep the snapshots that exist.
    """
    if not times_ms:
        raise ValueError("no snapshot times")
    out = Path(out_dir)
    argv = common_args(loglevel=loglevel)
    for t in times_ms:
        # -ss before -i seeks the demuxer to the key frame before t and decodes only from there
        # (still frame-accurate). One decoder thread per input: ten inputs already keep the cores
        # busy, and measured faster and ~25 % smaller than default threading.
        argv += ["-ss", f"{t / 1000:.3f}", "-threads", str(decoder_threads)]
        argv += input_args(source, demuxer=demuxer)
    paths: list[str] = []
    for index in range(len(times_ms)):
        path = os.fspath(out / name.format(index=index))
        paths.append(path)
        argv += [
            "-map",
            f"{index}:{video_stream}" if video_stream is not None else f"{index}:v:0",
            "-frames:v",
            "1",
            "-vf",
            f"scale={width}:{height}:flags=bicubic,setsar=1",
            "-q:v",
            str(quality),
            "-an",
            "-sn",
            "-dn",
            "-map_metadata",
            "-1",
            "-f",
            "image2",
            "-update",
            "1",
            path,
        ]
    return SnapshotCommand(
        argv=argv, times_ms=list(times_ms), paths=paths, width=width, height=height
    )


class SnapshotOutputs(msgspec.Struct, frozen=True, kw_only=True):
    """Snapshot branches of another command's filtergraph: graph text and output options."""

    graph: list[str]
    args: list[str]
    times_ms: list[int]
    paths: list[str]
    width: int
    height: int


def _picks(times_ms: Sequence[int]) -> str:
    """A select expression: the very first frame, then the first frame at or after each time.

    ``prev_pts`` is the previous frame's, so "t >= T and the previous frame was before T" holds
    for exactly one frame per T. The first frame opens the output at once: FFmpeg prints no
    progress until every output has started, and a watchdog reads that progress.
    """
    terms = ["eq(n\\,0)"]
    for at in times_ms:
        t = f"{at / 1000:.3f}"
        terms.append(f"gte(t\\,{t})*(isnan(prev_pts)+lt(prev_pts*TB\\,{t}))")
    return "+".join(terms)


def snapshot_outputs(
    source_label: str,
    out_dir: str | os.PathLike[str],
    times_ms: Sequence[int],
    *,
    width: int,
    height: int,
    quality: int = 3,
) -> SnapshotOutputs:
    """JPEGs taken from a decode that already runs: select picks the frames, one scaler, one JPEG
    sequence (snapshot_00.jpg is the opening frame; snapshot i is file i + 1).

    source_label is a filtergraph pad carrying the decoded (autorotated) video; width x height
    is the display size, as for build_snapshots. When one frame is the first at or after
    several times (a clip with fewer frames than snapshots), it is written once and the last
    files are missing; callers keep the snapshots that exist.
    """
    if not times_ms:
        raise ValueError("no snapshot times")
    out = Path(out_dir)
    graph = [
        f"[{source_label}]select=e={_picks(times_ms)},"
        f"scale={width}:{height}:flags=bicubic,setsar=1[shots]"
    ]
    args = ["-map", "[shots]", "-fps_mode:v", "passthrough", "-q:v", str(quality)]
    args += ["-an", "-sn", "-dn", "-map_metadata", "-1", "-f", "image2", "-start_number", "0"]
    args.append(os.fspath(out / "snapshot_%02d.jpg"))
    paths = [os.fspath(out / f"snapshot_{index + 1:02d}.jpg") for index in range(len(times_ms))]
    return SnapshotOutputs(
        graph=graph, args=args, times_ms=list(times_ms), paths=paths, width=width, height=height
    )


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Snapshots a ladder command should also write: when, how large, and where."""

    times_ms: list[int]
    width: int
    height: int
    out_dir: str
