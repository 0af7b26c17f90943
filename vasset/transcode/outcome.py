"""How an FFmpeg run ended, and what that means: an outcome, a stable failure code, permanence.

``FfmpegResult.code`` is one of ``errors.FailureCode``; ``raise_for_outcome()`` turns anything
but ok into an ``FfmpegError``, the ``MediaError`` a failed attempt reports.
"""

from __future__ import annotations

import enum
import re
import signal

import msgspec

from vasset.errors import FailureCode
from vasset.transcode.probe import MediaError


class Outcome(enum.StrEnum):
    """How an FFmpeg run ended."""

    OK = "ok"
    FAILED = "failed"  # exited non-zero on its own
    TIMEOUT = "timeout"  # wall-clock limit passed; we killed it
    STALLED = "stalled"  # no progress for stall_timeout; we killed it
    CANCELLED = "cancelled"  # cancel_event set (lease lost, shutdown) or task cancelled
    KILLED = "killed"  # died from a signal we did not send (OOM killer, CPU limit, crash)


class FfmpegResult(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one FFmpeg process."""

    outcome: Outcome
    returncode: int | None
    elapsed: float
    out_time_ms: int
    stderr_tail: str
    # The input is at fault: retrying the same file cannot help.
    permanent: bool = False
    # Finer cause: bad_input, out_of_memory, cpu_limit, signal name, ...
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether FFmpeg finished with exit code 0."""
        return self.outcome is Outcome.OK

    @property
    def code(self) -> str:
        """Stable error code for this outcome (meaningless when ok)."""
        if self.outcome is Outcome.FAILED:
            if self.permanent:
                return FailureCode.CORRUPT_MEDIA
            if self.reason == "out_of_memory":
                return FailureCode.TRANSCODE_OUT_OF_MEMORY
            return FailureCode.TRANSCODE_FAILED
        return _OUTCOME_CODES[self.outcome]

    def message(self) -> str:
        """One human-readable line (no paths beyond what FFmpeg printed last)."""
        last = _telling_line(self.stderr_tail)
        base = {
            Outcome.OK: "ffmpeg finished",
            Outcome.FAILED: f"ffmpeg exited with code {self.returncode}",
            Outcome.TIMEOUT: f"ffmpeg ran longer than allowed ({self.elapsed:.0f}s)",
            Outcome.STALLED: "ffmpeg made no progress",
            Outcome.CANCELLED: "ffmpeg was cancelled",
            Outcome.KILLED: f"ffmpeg was killed ({self.reason})",
        }[self.outcome]
        return f"{base}: {last}" if last and self.outcome is Outcome.FAILED else base

    def raise_for_outcome(self) -> None:
        """Raise FfmpegError unless the run was ok."""
        if not self.ok:
            raise FfmpegError(self)


_OUTCOME_CODES: dict[Outcome, str] = {
    Outcome.OK: "Ok",  # never stored: an ok run is no failure
    Outcome.TIMEOUT: FailureCode.TRANSCODE_TIMEOUT,
    Outcome.STALLED: FailureCode.TRANSCODE_STALLED,
    Outcome.CANCELLED: FailureCode.TRANSCODE_CANCELLED,
    Outcome.KILLED: FailureCode.TRANSCODE_KILLED,
}


class FfmpegError(MediaError):
    """An FFmpeg run that did not end ok; code and permanence come from its result."""

    def __init__(self, result: FfmpegResult) -> None:
        super().__init__(result.message())
        self.result = result
        self.code = result.code
        self.permanent = result.permanent


# Messages FFmpeg prints when the input itself is broken or unacceptable.
_BAD_INPUT = re.compile(
    r"Invalid data found when processing input|moov atom not found|not on whitelist"
    r"|does not contain any stream|could not find codec parameters|Decoder \(codec .*\) not found"
    r"|Unsupported codec|no decoder found|Invalid NAL unit size|partial file"
    r"|Error splitting the input into NAL units|EBML header parsing failed",
    re.IGNORECASE,
)
FFMPEG_SIGNALLED = 255
_TRAPPED_SIGNAL = re.compile(r"received signal (\d+)")
_OUT_OF_MEMORY = re.compile(
    r"Cannot allocate memory|Out of memory|bad_alloc|failed to allocate|malloc of size"
    r"|failed to map segment",
    re.IGNORECASE,
)


def _telling_line(text: str) -> str:
    """The stderr line that best explains a failure: a known cause, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (_OUT_OF_MEMORY, _BAD_INPUT):
        for line in lines:
            if pattern.search(line):
                return line[:300]
    return lines[-1][:300] if lines else ""


def classify_exit(returncode: int, stderr: str) -> tuple[Outcome, bool, str | None]:
    """(outcome, permanent, reason) of an FFmpeg exit that the watchdog did not cause."""
    if returncode == 0:
        return Outcome.OK, False, None
    if returncode < 0:
        signum = -returncode
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        reason = "cpu_limit" if signum == signal.SIGXCPU else name
        return Outcome.KILLED, False, reason
    if returncode == FFMPEG_SIGNALLED:
        # FFmpeg traps SIGTERM, SIGINT and SIGXCPU, then exits "normally" with 255 (and names the
        # signal only at info log level); we send none of those, so it is a limit or an operator.
        trapped = _TRAPPED_SIGNAL.search(stderr)
        trapped_signum = int(trapped.group(1)) if trapped else None
        reason = "cpu_limit" if trapped_signum == signal.SIGXCPU else "signal"
        return Outcome.KILLED, False, reason
    if _OUT_OF_MEMORY.search(stderr):
        return Outcome.FAILED, False, "out_of_memory"
    if _BAD_INPUT.search(stderr):
        return Outcome.FAILED, True, "bad_input"
    return Outcome.FAILED, False, "error"
