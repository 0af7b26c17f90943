"""Run FFmpeg sandboxed: own process group, resource limits, a progress watchdog, always reaped.

``run_ffmpeg`` never raises for FFmpeg's own failures: it returns an ``FfmpegResult`` whose
``outcome`` says what happened (ok, failed, timeout, stalled, cancelled, killed) and whose
``raise_for_outcome()`` turns anything but ok into an ``FfmpegError`` with a stable code (both
live in ``outcome``). Every way out (timeout, stall, cancel event, the calling task being
cancelled) SIGKILLs the whole process group and waits for the process, so no FFmpeg outlives its
job and no zombie is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import inspect
import os
import re
import resource
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import structlog

from vasset.transcode.outcome import FfmpegError, FfmpegResult, Outcome, classify_exit

# FfmpegError and Outcome moved to outcome; re-exported because callers import them from here.
__all__ = ["FfmpegError", "FfmpegResult", "Outcome", "Progress", "run_ffmpeg", "timeout_for"]

log = structlog.get_logger(__name__)

STDERR_LIMIT = 16 * 1024
# RLIMIT_AS counts address space, and glibc reserves 64 MiB per malloc arena (up to 8 per core):
# without a cap on arenas a many-threaded FFmpeg would hit the limit without using the memory.
MALLOC_ARENA_MAX = "2"


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """One -progress report."""

    out_time_ms: int
    fraction: float | None  # 0..1 when the duration is known
    frame: int
    speed: float | None
    done: bool


def timeout_for(duration_ms: int | None, factor: float, minimum: float) -> float:
    """Wall-clock seconds allowed for media of this duration: factor x duration, or minimum."""
    seconds = (duration_ms or 0) / 1000 * factor
    return max(minimum, seconds)


def _parent_death_signal() -> Callable[[], None]:
    """prctl(PR_SET_PDEATHSIG, SIGKILL), bound before fork; a no-op where prctl is missing.

    FFmpeg runs in its own session (so killpg reaches all of it); without this, a worker killed
    with SIGKILL would leave its FFmpeg running unsupervised and outside the slot cap.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return lambda: None
    parent = os.getpid()
    getppid, exit_now = os.getppid, os._exit

    def arm() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if getppid() != parent:  # the worker died between fork and prctl
            exit_now(1)

    return arm


def _limits(memory_limit: int | None, cpu_limit: float | None) -> Callable[[], None] | None:
    """A preexec_fn: die with the worker, then setrlimit (no locks taken before exec)."""
    arm = _parent_death_signal()
    cpu = int(cpu_limit) + 1 if cpu_limit else None
    setrlimit = resource.setrlimit  # bound now: no imports or attribute lookups in the child

    def apply() -> None:
        arm()
        setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit:
            setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if cpu:
            # SIGXCPU at the soft limit, SIGKILL a little later if it ignores that.
            setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))

    return apply


class _State:
    """Mutable run state shared by the reader tasks and the watchdog."""

    def __init__(self, duration_ms: int | None) -> None:
        self.duration_us = (duration_ms or 0) * 1000
        self.last_advance = time.monotonic()
        self.out_time_us = 0
        self.frame = 0
        self.total_size = 0
        self.stderr = bytearray()


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def _read_progress(
    stream: asyncio.StreamReader,
    state: _State,
    on_progress: Callable[[Progress], Awaitable[None] | None] | None,
) -> None:
    """Parse key=value blocks; each ends with progress=continue|end."""
    block: dict[str, str] = {}
    while True:
        raw = await stream.readline()
        if not raw:
            return
        key, sep, value = raw.decode("ascii", "replace").strip().partition("=")
        if not sep:
            continue
        block[key] = value.strip()
        if key != "progress":
            continue
        done = value.strip() == "end"
        # out_time_ms is microseconds too (a long-standing FFmpeg quirk); prefer out_time_us.
        out_us = _parse_int(block.get("out_time_us")) or _parse_int(block.get("out_time_ms")) or 0
        frame = _parse_int(block.get("frame")) or 0
        size = _parse_int(block.get("total_size")) or 0
        if done or out_us > state.out_time_us or frame > state.frame or size > state.total_size:
            state.last_advance = time.monotonic()
        state.out_time_us = max(state.out_time_us, out_us)
        state.frame = max(state.frame, frame)
        state.total_size = max(state.total_size, size)
        speed = block.get("speed", "").rstrip("x")
        block = {}
        if on_progress is None:
            continue
        fraction = None
        if state.duration_us:
            fraction = 1.0 if done else min(0.999, max(0.0, state.out_time_us / state.duration_us))
        progress = Progress(
            out_time_ms=state.out_time_us // 1000,
            fraction=fraction,
            frame=state.frame,
            speed=float(speed) if re.fullmatch(r"[0-9.]+", speed or "") else None,
            done=done,
        )
        try:
            result = on_progress(progress)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a broken callback must not leave FFmpeg unwatched
            log.exception("ffmpeg_progress_callback_failed")


async def _read_stderr(stream: asyncio.StreamReader, state: _State, limit: int) -> None:
    """Keep only the last `limit` bytes of stderr."""
    while True:
        chunk = await stream.read(8192)
        if not chunk:
            return
        state.stderr += chunk
        if len(state.stderr) > 2 * limit:
            del state.stderr[:-limit]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_leftovers(pgid: int) -> None:
    """Kill members of a reaped leader's group, if any (FFmpeg itself starts none)."""
    try:
        # Signal 0 only asks whether the group still exists; while it has a member its id
        # cannot be handed to another process, so the kill below hits only our children.
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return
    log.warning("ffmpeg_leftovers_killed", pgid=pgid)
    _kill_group(pgid)


async def run_ffmpeg(
    argv: Sequence[str],
    *,
    timeout: float,
    stall_timeout: float,
    memory_limit: int | None = None,
    cpu_limit: float | None = None,
    duration_ms: int | None = None,
    on_progress: Callable[[Progress], Awaitable[None] | None] | None = None,
    cancel_event: asyncio.Event | None = None,
    env: Mapping[str, str] | None = None,
    stderr_limit: int = STDERR_LIMIT,
) -> FfmpegResult:
    """Run argv (an FFmpeg command with -progress pipe:1) under the watchdog; see FfmpegResult.

    memory_limit caps the address space (RLIMIT_AS, bytes); cpu_limit caps CPU seconds
    (RLIMIT_CPU, summed over threads; defaults to timeout x cores as a backstop to the watchdog).
    """
    if cpu_limit is None:
        cpu_limit = timeout * (os.cpu_count() or 1) + 10
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    state = _State(duration_ms)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # own process group: killpg reaches every child it starts
        preexec_fn=_limits(memory_limit, cpu_limit),
        env=child_env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    log.debug("ffmpeg_started", pid=proc.pid, args=len(argv), timeout=timeout)
    readers = [
        asyncio.create_task(_read_progress(proc.stdout, state, on_progress)),
        asyncio.create_task(_read_stderr(proc.stderr, state, stderr_limit)),
    ]
    waiter = asyncio.create_task(proc.wait())
    cancel_waiter = asyncio.create_task(cancel_event.wait()) if cancel_event else None
    verdict: Outcome | None = None
    tick = max(0.02, min(0.5, stall_timeout / 5, timeout / 5))
    try:
        while not waiter.done():
            pending = {waiter} if cancel_waiter is None else {waiter, cancel_waiter}
            await asyncio.wait(pending, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                break
            now = time.monotonic()
            if cancel_event is not None and cancel_event.is_set():
                verdict = Outcome.CANCELLED
            elif now - started >= timeout:
                verdict = Outcome.TIMEOUT
            elif now - state.last_advance >= stall_timeout:
                verdict = Outcome.STALLED
            if verdict is not None:
                log.warning("ffmpeg_killed", pid=proc.pid, reason=verdict.value)
                _kill_group(proc.pid)
                break
    except asyncio.CancelledError:
        verdict = Outcome.CANCELLED
        log.warning("ffmpeg_killed", pid=proc.pid, reason="task_cancelled")
        _kill_group(proc.pid)
        raise
    finally:
        if cancel_waiter is not None:
            cancel_waiter.cancel()
        # Reap, whatever happened, then make sure nothing of the group outlived the leader.
        await asyncio.shield(waiter)
        _kill_leftovers(proc.pid)
        _, stuck = await asyncio.wait(readers, timeout=5)
        for task in stuck:
            task.cancel()
    returncode = waiter.result()
    stderr = bytes(state.stderr[-stderr_limit:]).decode("utf-8", "replace")
    if verdict is None:
        outcome, permanent, reason = classify_exit(returncode, stderr)
    else:
        outcome, permanent, reason = verdict, False, None
    result = FfmpegResult(
        outcome=outcome,
        returncode=returncode,
        elapsed=round(time.monotonic() - started, 3),
        out_time_ms=state.out_time_us // 1000,
        stderr_tail=stderr,
        permanent=permanent,
        reason=reason,
    )
    log.info(
        "ffmpeg_finished",
        pid=proc.pid,
        outcome=outcome.value,
        returncode=returncode,
        elapsed=result.elapsed,
        reason=reason,
    )
    return result
