"""PNG validation without an image library: chunks, CRCs, IHDR, and a full inflate of IDAT.

A watermark is decoded by FFmpeg inside a job, long after the upload answered: anything it
could choke on is refused here, at the edge, with ``InvalidImage``. The image data is inflated
in bounded steps (never held whole) and must come out at exactly the size IHDR implies, with a
valid filter byte starting every row, so a truncated or padded file is caught before storage.
"""

from __future__ import annotations

import struct
import zlib

import msgspec

from vasset import errors

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type -> (allowed bit depths, samples per pixel)
_COLOUR_TYPES: dict[int, tuple[tuple[int, ...], int]] = {
    0: ((1, 2, 4, 8, 16), 1),  # greyscale
    2: ((8, 16), 3),  # RGB
    3: ((1, 2, 4, 8), 1),  # palette
    4: ((8, 16), 2),  # greyscale + alpha
    6: ((8, 16), 4),  # RGBA
}
# Adam7 passes: (x start, y start, x step, y step).
_ADAM7: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_INFLATE_STEP = 1 << 16


class PngInfo(msgspec.Struct, frozen=True):
    """What a valid PNG declares."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool


def _refuse(why: str) -> errors.InvalidImage:
    return errors.InvalidImage(f"not a valid PNG: {why}")


def _rows(info: PngInfo) -> list[tuple[int, int]]:
    """(row count, bytes per row including the filter byte) of each pass."""
    samples = _COLOUR_TYPES[info.colour_type][1]
    bits = samples * info.bit_depth

    def row_bytes(width: int) -> int:
        return 1 + (width * bits + 7) // 8

    if not info.interlaced:
        return [(info.height, row_bytes(info.width))]
    passes = []
    for x0, y0, dx, dy in _ADAM7:
        w = (info.width - x0 + dx - 1) // dx if info.width > x0 else 0
        h = (info.height - y0 + dy - 1) // dy if info.height > y0 else 0
        if w and h:
            passes.append((h, row_bytes(w)))
    return passes


def _check_image_data(info: PngInfo, compressed: list[bytes]) -> None:
    """Inflate IDAT in bounded steps: exact size, a filter type 0-4 starting every row."""
    starts: list[int] = []
    offset = 0
    for count, length in _rows(info):
        starts.extend(range(offset, offset + count * length, length))
        offset += count * length
    expected = offset
    inflater = zlib.decompressobj()
    produced = 0
    next_row = 0
    try:
        pending = b"".join(compressed)
        while True:
            out = inflater.decompress(pending, _INFLATE_STEP)
            pending = inflater.unconsumed_tail
            while next_row < len(starts) and starts[next_row] < produced + len(out):
                if out[starts[next_row] - produced] > 4:
                    raise _refuse("a row has an unknown filter type")
                next_row += 1
            produced += len(out)
            if produced > expected:
                raise _refuse("the image data is longer than IHDR declares")
            if inflater.eof or (not out and not pending):
                break
    except zlib.error:
        raise _refuse("the image data does not inflate") from None
    if not inflater.eof or produced != expected:
        raise _refuse("the image data is truncated")


def validate_png(data: bytes, max_dimension: int) -> PngInfo:
    """Check data is one complete, decodable PNG no larger than max_dimension on a side."""
    if not data.startswith(SIGNATURE):
        raise _refuse("the PNG signature is missing")
    pos = len(SIGNATURE)
    info: PngInfo | None = None
    idat: list[bytes] = []
    seen_palette = False
    previous = b""
    while True:
        if pos + 8 > len(data):
            raise _refuse("the file ends inside a chunk header (truncated)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if length > 0x7FFFFFFF or end > len(data):
            raise _refuse("the file ends inside a chunk (truncated)")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise _refuse(f"chunk {kind!r} has a wrong CRC")
        pos = end
        if info is None:
            if kind != b"IHDR" or length != 13:
                raise _refuse("the first chunk is not a 13-byte IHDR")
            width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            if not (width and height):
                raise _refuse("zero width or height")
            if width > max_dimension or height > max_dimension:
                raise errors.InvalidImage(
                    f"the PNG is {width}x{height}; at most {max_dimension}x{max_dimension} is "
                    "accepted"
                )
            allowed = _COLOUR_TYPES.get(colour)
            if allowed is None or depth not in allowed[0]:
                raise _refuse(f"colour type {colour} with bit depth {depth}")
            if comp != 0 or filt != 0 or interlace not in (0, 1):
                raise _refuse("unknown compression, filter or interlace method")
            info = PngInfo(width, height, depth, colour, interlace == 1)
        elif kind == b"PLTE":
            seen_palette = True
        elif kind == b"IDAT":
            if idat and previous != b"IDAT":
                raise _refuse("IDAT chunks are not consecutive")
            idat.append(body)
        elif kind == b"IEND":
            if pos != len(data):
                raise _refuse("bytes follow IEND")
            break
        elif kind == b"IHDR":
            raise _refuse("a second IHDR")
        previous = kind
    assert info is not None  # IEND is only reached after IHDR
    if not idat:
        raise _refuse("no image data (IDAT)")
    if info.colour_type == 3 and not seen_palette:
        raise _refuse("a palette image without PLTE")
    _check_image_data(info, idat)
    return info
