"""Load under faults: uploads and reads over 2 APIs and 3 workers while parts of it die.

    python bench/load.py [--seconds 60] [--uploads 100] [--max-size 200M] [--rps 20]

Starts its own deployment (a private MariaDB database, a private redis-server on a free port,
2 `vasset serve` and 3 `vasset worker` with VASSET_FFMPEG_GLOBAL_LIMIT=2, local disk in a temp
dir). For --seconds, --uploads concurrent uploaders run resumable part-mode uploads back to
back (log-uniform sizes from --min-size to --max-size; every --clip-every-th a real clip, the
first --max-auto of those with auto=1), spread over both APIs, plus --rps status and play-URL
calls. At 25 % of the run API 0 is SIGKILLed (back 3 s later), from 45 % the first worker seen
running FFmpeg is SIGKILLed (and replaced), at 65 % Redis is killed and restarted empty. Then
in-flight uploads finish (bounded), every upload is checked against the database and the
stored bytes, and auto=1 clips are awaited. Exit 1 when something was lost, corrupted or
refused, or more than 2 FFmpeg processes ran at once.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadkit.procs import Deployment  # noqa: E402
from bench.loadkit.scenario import LoadConfig, Scenario  # noqa: E402
from bench.loadkit.verify import report, verify  # noqa: E402

FFMPEG_CAP = 2


def size(text: str) -> int:
    """A byte count: 200M, 100K, 1G or plain bytes (K = 1000, M = 2**20)."""
    units = {"K": 1000, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main() -> int:
    """Run, verify, print; 0 when nothing was lost or corrupted and the FFmpeg cap held."""
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--uploads", type=int, default=defaults.uploads)
    parser.add_argument("--min-size", type=size, default=defaults.min_size)
    parser.add_argument("--max-size", type=size, default=defaults.max_size)
    parser.add_argument("--rps", type=float, default=defaults.rps)
    parser.add_argument("--clip-every", type=int, default=defaults.clip_every)
    parser.add_argument("--max-auto", type=int, default=defaults.max_auto)
    parser.add_argument("--drain", type=float, default=defaults.drain)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, storage)")
    args = parser.parse_args()
    config = LoadConfig(
        seconds=args.seconds,
        uploads=args.uploads,
        min_size=args.min_size,
        max_size=max(args.min_size, args.max_size),
        rps=args.rps,
        clip_every=args.clip_every,
        max_auto=args.max_auto,
        drain=args.drain,
    )
    tmp = Path(tempfile.mkdtemp(prefix="vasset-bench-load-"))
    print(f"$ python bench/load.py {' '.join(sys.argv[1:])}", flush=True)
    deployment = Deployment(tmp, apis=2, workers=3).start()
    try:
        scenario = Scenario(deployment, config, tmp / "media")
        run = scenario.execute()
        verdict = verify(deployment, run)
        for line in report(run, verdict, scenario.sampler, FFMPEG_CAP):
            print(line, flush=True)
    finally:
        deployment.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ok = verdict.passed(scenario.sampler.max_ffmpeg, FFMPEG_CAP)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
