"""Clip bench: a two-range clip of the 5-minute 720p clip, cuts on key frames, vs plain FFmpeg.

    python bench/clip.py [--clips DIR] [--rounds 3]
    python bench/transcode.py --clip [--rounds 3]     (the same, from the transcode bench)

Figure: POST /video/clip -> the new video's source stored and recorded (the worker's
clip_source_made event, before the clip's own ladder starts), for ranges 60-70 s and
120-130 s of tests/media.bench_720p (2 s GOP, so every cut is on a key frame and the job
stream-copies). Target: under 2 s. Baseline, interleaved round by round: the same stream copy
as one plain `ffmpeg` run (the concat demuxer with inpoint/outpoint), no queue, no storage.
The rest of vasset's time is the claim, the source's probe and key-frame scan, the store of
the result and one transaction.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.transcode import Stack, load, ts
from tests import media
from tests.support.db import sql
from vasset.clips import commands
from vasset.clips.ranges import parse_ranges

RANGES = "60000-70000,120000-130000"
TARGET = 2.0


def plain_copy(source: Path, out: Path) -> float:
    """Wall seconds of the same stream copy as one plain ffmpeg run."""
    script = out.with_suffix(".ffconcat")
    script.write_text(commands.concat_list(source, parse_ranges(RANGES)))
    argv = commands.copy_argv(script, "mov", out, has_audio=True)
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def vasset_clip(stack: Stack, vid: int) -> dict:
    """One POST /video/clip: request -> source ready, and the worker's own share."""
    sent = time.time()
    r = stack.api.call("POST", "/video/clip", {"vid": vid, "ranges": RANGES, "priority": 10})
    assert r.status_code == 200, r.text
    new = r.json()["vid"]
    assert stack.worker is not None
    made = stack.worker.wait_event("clip_source_made", timeout=120, where=lambda e: e["vid"] == new)
    started = next(e for e in stack.worker.events("job_started") if e["vid"] == new)
    stack.wait_playable(new)  # the clip's own ladder ends before the next round starts
    return {
        "vid": new,
        "mode": made["mode"],
        "request_to_source": ts(made) - sent,
        "claim_wait": ts(started) - sent,
        "worker": made["elapsed"],
    }


def run(clips: Path, rounds: int) -> dict:
    """Run the bench (its own database, API and worker) and print the figures."""
    source = media.bench_720p(clips)
    tmp = Path(tempfile.mkdtemp(prefix="vasset-clipbench-"))
    # One cheap rendition: the source's own ladder only has to give it a known duration.
    stack = Stack(tmp, VASSET_LADDER="360p", VASSET_FFMPEG_TIMEOUT_FACTOR="100")
    try:
        stack.start_worker()
        vid = stack.upload(source)
        job = stack.enqueue(vid)
        stack.wait_playable(vid)
        print(f"source {source.name} playable (job {job}); ranges {RANGES}", flush=True)
        plain, ours = [], []
        for n in range(rounds):
            plain.append(plain_copy(source, tmp / f"plain{n}.mp4"))
            print(f"[{n + 1}] plain ffmpeg stream copy: {plain[-1]:.3f}s  [{load()}]", flush=True)
            r = vasset_clip(stack, vid)
            ours.append(r)
            print(
                f"[{n + 1}] vasset ({r['mode']}): request -> source ready"
                f" {r['request_to_source']:.3f}s (claim {r['claim_wait']:.3f}s, worker"
                f" {r['worker']:.3f}s)  [{load()}]",
                flush=True,
            )
        clips = "SELECT COUNT(*) FROM video WHERE source_name LIKE 'clip-%' AND parent_id IS NULL"
        rows = sql(stack.env, clips)
        assert rows[0][0] == rounds
        best = min(r["request_to_source"] for r in ours)
        print(
            f"\nclip, two 10 s ranges of a 5-minute 720p clip on key frames: best"
            f" {best:.3f}s, median {sorted(r['request_to_source'] for r in ours)[rounds // 2]:.3f}s"
            f" (plain ffmpeg best {min(plain):.3f}s); target < {TARGET:.0f} s:"
            f" {'PASS' if best < TARGET else 'FAIL'}",
            flush=True,
        )
        return {"clip_best": best, "plain_best": min(plain)}
    finally:
        stack.close()


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", default=str(Path(tempfile.gettempdir()) / "vasset-bench-media"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)
    clips = Path(args.clips)
    clips.mkdir(parents=True, exist_ok=True)
    run(clips, args.rounds)


if __name__ == "__main__":
    main()
