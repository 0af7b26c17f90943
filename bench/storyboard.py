"""Storyboard bench: what a storyboard adds to the transcode job of a 5-minute 720p clip.

    python bench/storyboard.py [--clips DIR] [--rounds 2]
    python bench/transcode.py --storyboard [--rounds 2]     (the same, from the transcode bench)

The same job (POST /video/retranscode of tests/media.bench_720p, the default ladder, HLS on,
snapshots and the audio rendition as always) runs through a real API and worker, once with
storyboards on and once with them off (VASSET_STORYBOARD on the worker), interleaved round by
round on this shared machine. Figures per round: the job (claim -> published, from the job row)
and its FFmpeg run (the worker's ffmpeg_finished event). Target: the storyboard adds under 3 s
to the job; the verdict uses the medians of the per-round differences.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.transcode import Stack, ffmpeg_runs, load
from tests import media
from tests.support.db import sql
from tests.support.workers import open_slot_epoch
from vasset.settings import Settings
from vasset.transcode.storyboard import plan_layout

TARGET = 3.0


def one_job(stack: Stack, vid: int, storyboard: bool) -> dict:
    """Retranscode vid with storyboards on or off; the job's and its FFmpeg's seconds."""
    stack.start_worker(VASSET_STORYBOARD="1" if storyboard else "0")
    job_id = stack.enqueue(vid, "/video/retranscode")
    while stack.job(job_id)["finished_at"] is None:
        time.sleep(0.25)
    job = stack.job(job_id)
    assert job["state"] == "succeeded", job
    runs = ffmpeg_runs(stack.job_events(job_id))
    info = sql(stack.env, "SELECT media_info FROM video WHERE id = :v", v=vid)[0][0]
    assert ('"storyboard"' in info) == storyboard, "the storyboard setting did not take"
    return {"job": job["finished_at"] - job["started_at"], "ffmpeg": sum(r[2] for r in runs)}


def run(clips: Path, rounds: int) -> None:
    """Print per-round figures and the verdict."""
    clips.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    clip = media.bench_720p(clips)
    print(f"clip ready in {time.perf_counter() - built:.1f}s: {clip.name}", flush=True)
    layout = plan_layout(300_000, 1280, 720)
    assert layout is not None
    print(
        f"storyboard: {layout.count} tiles of {layout.tile_width}x{layout.tile_height}, one every"
        f" {layout.interval} s, {len(layout.sheets())} sheet(s) of {layout.columns}x{layout.rows}",
        flush=True,
    )
    print(f"start: {load()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vasset-sbbench-"))
    stack = Stack(tmp, VASSET_FFMPEG_TIMEOUT_FACTOR="100")
    try:
        redis_url = stack.env.get("VASSET_REDIS_URL", Settings().redis_url)
        open_slot_epoch(redis_url, stack.env["VASSET_REDIS_PREFIX"])
        vid = stack.upload(clip)
        stack.start_worker()
        # The first ladder (progressive, playable early): later rounds retranscode a complete one.
        first = stack.enqueue(vid)
        while stack.job(first)["finished_at"] is None:
            time.sleep(0.25)
        rows: dict[bool, list[dict]] = {True: [], False: []}
        for n in range(rounds):
            # alternate which goes first, so a drift in load hits both sides alike
            for mode in (False, True) if n % 2 == 0 else (True, False):
                figures = one_job(stack, vid, mode)
                rows[mode].append(figures)
                name = "with storyboard   " if mode else "without storyboard"
                print(
                    f"round {n + 1} {name}: job {figures['job']:.2f}s,"
                    f" ffmpeg {figures['ffmpeg']:.2f}s  ({load()})",
                    flush=True,
                )
    finally:
        stack.close()
    job_diff = [a["job"] - b["job"] for a, b in zip(rows[True], rows[False], strict=True)]
    ff_diff = [a["ffmpeg"] - b["ffmpeg"] for a, b in zip(rows[True], rows[False], strict=True)]
    added = statistics.median(job_diff)
    print("\n== storyboard cost, 5-minute 720p clip (default ladder, HLS on)")
    for key in ("job", "ffmpeg"):
        on = [r[key] for r in rows[True]]
        off = [r[key] for r in rows[False]]
        print(
            f"{key:>6}: without {statistics.median(off):.2f}s (best {min(off):.2f}),"
            f" with {statistics.median(on):.2f}s (best {min(on):.2f})"
        )
    print(f"added per round (job): {', '.join(f'{d:+.2f}s' for d in job_diff)}")
    print(f"added per round (ffmpeg): {', '.join(f'{d:+.2f}s' for d in ff_diff)}")
    verdict = "PASS" if added < TARGET else "FAIL"
    print(f"storyboard adds {added:+.2f}s (median) to the job: target < {TARGET:.0f}s {verdict}")
    print(f"end: {load()}")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", default=str(Path(tempfile.gettempdir()) / "vasset-bench-media"))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)
    run(Path(args.clips), args.rounds)


if __name__ == "__main__":
    main()
