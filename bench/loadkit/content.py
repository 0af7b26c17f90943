"""What the load client uploads: synthetic bytes made on demand, and unique real clips."""

from __future__ import annotations

import hashlib
import math
import os
import random
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import media

KiB = 1024
MiB = 1024 * KiB
CHUNK = MiB


@dataclass
class Source:
    """Bytes of one upload: synthetic (a seed block, numbered per MiB) or a file on disk."""

    name: str
    size: int
    part_size: int
    block: bytes = b""
    path: Path | None = None
    md5: str = ""  # of the whole source, once every part went through part_with_md5 (or digest)
    hashed: int = 0  # parts 1..hashed are in _whole
    _whole: Any = field(default=None, repr=False)

    @property
    def part_count(self) -> int:
        """Parts the upload is cut into."""
        return max(1, math.ceil(self.size / self.part_size))

    def read(self, offset: int, length: int) -> bytes:
        """length bytes from offset (a clip's file, or the synthetic pattern)."""
        if self.path is not None:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        out = bytearray()
        while length > 0:
            index, inner = divmod(offset, CHUNK)
            # Each MiB starts with its own number, so a part stored at the wrong place is caught.
            chunk = index.to_bytes(8, "big") + self.block[8:]
            take = min(length, CHUNK - inner)
            out += chunk[inner : inner + take]
            offset += take
            length -= take
        return bytes(out)

    def part(self, pseq: int) -> bytes:
        """The bytes of part pseq (1-based)."""
        start = (pseq - 1) * self.part_size
        return self.read(start, min(self.part_size, self.size - start))

    def part_with_md5(self, pseq: int) -> tuple[bytes, str]:
        """Part pseq and its MD5; the whole-file MD5 grows as parts come in order.

        Parts are first sent in order and a re-send never skips ahead, so the whole MD5 costs
        one pass over the bytes, made while sending (no read of the whole source up front).
        """
        body = self.part(pseq)
        if pseq == self.hashed + 1:
            if self._whole is None:
                self._whole = hashlib.md5()
            self._whole.update(body)
            self.hashed = pseq
            if pseq == self.part_count:
                self.md5 = self._whole.hexdigest()
        return body, hashlib.md5(body).hexdigest()

    def digest(self) -> Source:
        """Fill md5 with one pass over every part (small sources, or a check afterwards)."""
        whole = hashlib.md5()
        for pseq in range(1, self.part_count + 1):
            whole.update(self.part(pseq))
        self.md5 = whole.hexdigest()
        return self


def part_size_for(size: int) -> int:
    """1 MiB parts up to 16 MiB, 4 MiB above: few requests, bounded client memory."""
    return CHUNK if size <= 16 * MiB else 4 * CHUNK


def synthetic(rng: random.Random, min_size: int, max_size: int) -> Source:
    """Random bytes of a log-uniform size in [min_size, max_size] (small files are common)."""
    size = int(math.exp(rng.uniform(math.log(min_size), math.log(max_size))))
    block = os.urandom(CHUNK)
    return Source(f"blob-{secrets.token_hex(4)}.bin", size, part_size_for(size), block=block)


def base_clip(clip_dir: Path, size: str = "640x360", seconds: int = 6) -> Path:
    """An H.264 + AAC clip of testsrc2 (640x360, 6 s: a ladder run of a few seconds)."""
    name = f"load_{size}_{seconds}s.mp4"
    return media._cached(clip_dir, name, lambda p: media._av_clip(p, size, seconds))


def unique_clip(base: Path, out_dir: Path) -> Source:
    """A copy of base with its own bytes (a remux with a random comment), so no instant upload."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(6)
    out = out_dir / f"clip-{tag}.mp4"
    remux = ["-map", "0", "-c", "copy", "-metadata", f"comment={tag}", str(out)]
    subprocess.run(
        [
            media.FFMPEG,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(base),
            *remux,
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    size = out.stat().st_size
    # Several parts even for a small clip: the faults must find it half sent.
    part = max(100 * KiB, min(CHUNK, size // 3 + 1))
    return Source(out.name, size, part, path=out)
