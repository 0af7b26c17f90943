"""Parsing and checking ``ranges=START-END[,START-END...]`` (milliseconds); pure."""

from __future__ import annotations

import itertools
import re

import msgspec

from vasset import errors

#: Most ranges one clip may take (each is one more input of the clip's FFmpeg run).
MAX_RANGES = 20
#: A range shorter than this (one frame at 25 fps) is empty.
MIN_RANGE_MS = 40
_RANGE = re.compile(r"(\d{1,10})-(\d{1,10})")


class Range(msgspec.Struct, frozen=True, array_like=True):
    """One half-open range [start_ms, end_ms) of the source."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        """How long the range is."""
        return self.end_ms - self.start_ms


def parse_ranges(text: str) -> list[Range]:
    """Ranges from their query text, in order; raises the ClipRange* errors (no bounds check)."""
    items = text.split(",") if text else []
    if not items:
        raise errors.ClipRangesMalformed("ranges is empty: give START-END[,START-END...] in ms")
    if len(items) > MAX_RANGES:
        raise errors.ClipTooManyRanges(f"at most {MAX_RANGES} ranges, got {len(items)}")
    found = []
    for index, item in enumerate(items):
        # fullmatch on ASCII digits only: no signs, spaces, decimals or Unicode digits.
        match = _RANGE.fullmatch(item) if item.isascii() else None
        if match is None:
            raise errors.ClipRangesMalformed(
                f"range {index + 1} ({item[:40]!r}) is not START-END in whole milliseconds",
                range=index + 1,
            )
        start, end = int(match.group(1)), int(match.group(2))
        if end < start:
            raise errors.ClipRangeReversed(
                f"range {index + 1} ends ({end}) before it starts ({start})", range=index + 1
            )
        if end - start < MIN_RANGE_MS:
            raise errors.ClipRangeEmpty(
                f"range {index + 1} is shorter than {MIN_RANGE_MS} ms", range=index + 1
            )
        found.append(Range(start, end))
    # Ranges may come in any order (the clip follows it), but no two may share a moment.
    ordered = sorted(range(len(found)), key=lambda i: found[i].start_ms)
    for i, j in itertools.pairwise(ordered):
        if found[j].start_ms < found[i].end_ms:
            raise errors.ClipRangesOverlap(
                f"ranges {min(i, j) + 1} and {max(i, j) + 1} overlap", range=max(i, j) + 1
            )
    return found


def check_bounds(ranges: list[Range], duration_ms: int) -> None:
    """Refuse a range that ends after the source does."""
    for index, r in enumerate(ranges):
        if r.end_ms > duration_ms:
            raise errors.ClipRangeOutOfBounds(
                f"range {index + 1} ends at {r.end_ms} ms, the source is {duration_ms} ms long",
                range=index + 1,
                duration=duration_ms,
            )


def on_keyframes(ranges: list[Range], keyframes_ms: list[int], duration_ms: int, tol: int) -> bool:
    """Whether every cut falls on a key frame (an end may also be the source's end)."""

    def at_key(t: int) -> bool:
        return any(abs(t - k) <= tol for k in keyframes_ms)

    return all(
        at_key(r.start_ms) and (at_key(r.end_ms) or r.end_ms >= duration_ms - tol) for r in ranges
    )
