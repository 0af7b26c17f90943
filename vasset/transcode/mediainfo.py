"""libmediainfo in a short-lived child process, so its memory is capped and given back.

Parsed in the worker, libmediainfo keeps what a file made it allocate: a 2 MB MP4 with 999
tracks costs the calling process some 100 MB, for good. ``first_tracks()`` runs
``python -m vasset.transcode.mediainfo`` instead, under RLIMIT_AS and RLIMIT_CPU, and reads the
first General, Video and Audio tracks back as JSON; everything else dies with the child.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from typing import Any

# Exit codes of the child, besides 0 (the JSON is on stdout).
EXIT_UNAVAILABLE = 2  # pymediainfo or libmediainfo cannot be loaded: the host's fault
EXIT_OUT_OF_MEMORY = 3  # the file needs more memory than the cap: the file's fault
EXIT_PARSE_ERROR = 4  # MediaInfo raised on the file: the file's fault


class MediaInfoError(Exception):
    """The child gave no tracks; ``file_fault`` says whether another attempt could help."""

    def __init__(self, message: str, *, file_fault: bool) -> None:
        super().__init__(message)
        self.message = message
        self.file_fault = file_fault


def first_tracks(path: str, *, timeout: float, memory_limit: int | None) -> dict[str, dict]:
    """The first track of each type ({"General": {...}, "Video": ...}) as pymediainfo's dicts."""
    cpu = max(1, int(timeout))
    argv = [sys.executable, "-m", "vasset.transcode.mediainfo", path, str(memory_limit or 0)]
    argv.append(str(cpu))
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # arenas count against RLIMIT_AS
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaInfoError(
            f"MediaInfo took longer than {timeout:.0f}s", file_fault=False
        ) from exc
    code = proc.returncode
    if code == 0:
        try:
            return json.loads(proc.stdout)
        except ValueError as exc:
            raise MediaInfoError("MediaInfo wrote invalid JSON", file_fault=False) from exc
    if code == EXIT_UNAVAILABLE:
        raise MediaInfoError("MediaInfo is not available", file_fault=False)
    if code == EXIT_OUT_OF_MEMORY:
        limit = f"{(memory_limit or 0) >> 20} MiB"
        raise MediaInfoError(f"reading the file needs more than {limit}", file_fault=True)
    if code == EXIT_PARSE_ERROR:
        raise MediaInfoError("MediaInfo cannot parse the file", file_fault=True)
    if code < 0:
        # Killed by a limit or crashed inside libmediainfo: the same file would do it again.
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        raise MediaInfoError(f"MediaInfo died reading the file ({name})", file_fault=True)
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    raise MediaInfoError(f"MediaInfo exited with code {code}: {tail[0][:200]}", file_fault=False)


def _limit(memory_limit: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))


def _main(argv: list[str]) -> int:
    """Child: limit itself, parse one file, print the first track of each type as JSON."""
    path, memory_limit, cpu_seconds = argv[0], int(argv[1]), int(argv[2])
    _limit(memory_limit, cpu_seconds)
    try:
        from pymediainfo import MediaInfo

        if not MediaInfo.can_parse():  # loads libmediainfo, so a failure here is the host's
            return EXIT_UNAVAILABLE
    except (ImportError, OSError):
        return EXIT_UNAVAILABLE
    tracks: dict[str, dict[str, Any]] = {}
    try:
        # No continuous file names: never let MediaInfo glue "clip1.mp4, clip2.mp4" together.
        parsed = MediaInfo.parse(path, mediainfo_options={"File_TestContinuousFileNames": "0"})
        for track in parsed.tracks:
            if track.track_type not in tracks:
                tracks[track.track_type] = track.to_data()
    except MemoryError:
        return EXIT_OUT_OF_MEMORY
    except Exception:  # e.g. no XML at all: libmediainfo gave up on the file
        return EXIT_PARSE_ERROR
    sys.stdout.write(json.dumps(tracks, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
