"""Upload progress summed over parallel parts, and an optional cap on the sending rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Progress", "ProgressMeter", "RatePacer"]

#: A progress callback: (bytes done, total bytes).
Progress = Callable[[int, int], None]


class ProgressMeter:
    """Bytes sent per part, reported as one total that never goes backwards."""

    def __init__(self, on_progress: Progress | None) -> None:
        self.on_progress = on_progress
        #: The file's size.
        self.total = 0
        #: Parts whose upload finished in this run.
        self.parts_sent = 0
        self._lock = threading.Lock()
        self._done = 0
        self._part_sent: dict[int, int] = {}
        self._reported = 0

    def reset(self) -> None:
        """Nothing sent yet (a new upload of the same file)."""
        with self._lock:
            self._part_sent.clear()
            self._done = 0

    def preset(self, part_size: int, missing: list[int]) -> None:
        """Count every part the server already has (a resumed upload)."""
        gone = set(missing)
        count = -(-self.total // part_size) if part_size else 0
        with self._lock:
            for pseq in range(1, count + 1):
                if pseq not in gone:
                    length = min(part_size, self.total - (pseq - 1) * part_size)
                    self._part_sent[pseq] = length
                    self._done += length
            self._report()

    def advance(self, pseq: int, sent: int) -> None:
        """Part pseq has sent `sent` bytes so far (a retry starts again below that)."""
        with self._lock:
            before = self._part_sent.get(pseq, 0)
            if sent > before:
                self._part_sent[pseq] = sent
                self._done += sent - before
                self._report()

    def part_done(self, pseq: int, length: int) -> None:
        """Part pseq was stored whole."""
        with self._lock:
            self.parts_sent += 1
        self.advance(pseq, length)

    def all_done(self) -> None:
        """The whole file is uploaded (also after an instant upload)."""
        with self._lock:
            self._done = self.total
            self._report()

    def _report(self) -> None:
        # The caller holds the lock, so reports reach the callback in order.
        value = max(self._reported, min(self._done, self.total))
        self._reported = value
        if self.on_progress is not None:
            self.on_progress(value, self.total)


class RatePacer:
    """Blocks senders so that together they stay under a rate in bytes per second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0

    def pace(self, n: int, max_rate: float | None) -> None:
        """Wait before sending n more bytes, if max_rate (None: unlimited) asks for it."""
        if not max_rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now) + n / max_rate
            delay = self._next - now - n / max_rate
        if delay > 0:
            time.sleep(delay)
