"""Load under faults, 15 seconds: bench/load.py's run, small, with its three faults.

Two real APIs and three real workers (global FFmpeg cap 2) on a private database and a private
redis-server; 20 concurrent uploaders (up to 8 MB, the first three clips with auto=1) spread
over both APIs while API 0 is SIGKILLed, a worker running FFmpeg is SIGKILLed and Redis is
restarted empty. Nothing may be lost or corrupted, every upload completes, the cap holds and
every auto=1 clip becomes playable. No timing is asserted: waits are bounded, not measured.
"""

from __future__ import annotations

import pytest

from bench.loadkit.content import MiB
from bench.loadkit.procs import Deployment
from bench.loadkit.scenario import LoadConfig, Scenario
from bench.loadkit.verify import report, verify
from tests import media
from tests.support.db import sql

FFMPEG_CAP = 2

CONFIG = LoadConfig(
    seconds=15,
    uploads=20,
    max_size=8 * MiB,
    rps=5,
    clip_every=7,
    max_auto=3,
    clip_size="320x240",
    clip_seconds=4,
    api_kill_at=0.25,
    # The first worker seen running FFmpeg (the clips' transcodes start within seconds).
    worker_kill_at=0.0,
    redis_restart_at=0.6,
    drain=120,
    transcode_wait=180,
)


@pytest.fixture
def deployment(tmp_path):
    # An upload whose completing API was SIGKILLed is taken over one VASSET_COMPLETION_LEASE
    # (30 s by default; live completions renew it) later: the default, as operators run it.
    dep = Deployment(tmp_path / "load", apis=2, workers=3)
    try:
        yield dep.start()
    finally:
        dep.stop()


def test_uploads_and_transcodes_survive_api_worker_and_redis_deaths(deployment, tmp_path_factory):
    scenario = Scenario(deployment, CONFIG, media.shared_dir(tmp_path_factory))
    run = scenario.execute()
    verdict = verify(deployment, run)
    figures = "\n".join(report(run, verdict, scenario.sampler, FFMPEG_CAP))

    # The three faults happened, while clients were running.
    names = [f.name for f in run.faults]
    assert {"api SIGKILL", "worker SIGKILL during FFmpeg", "redis restarted"} <= set(names), figures
    assert run.stats.failovers > 0, figures  # clients did meet the dead API and moved over
    assert sum(r.resumes for r in run.records) > 0, figures  # and resumed uploads from the listing

    # Nothing lost, nothing corrupted, nothing refused, no client gave up.
    assert not verdict.lost, figures
    assert not verdict.corrupted, figures
    assert not verdict.refused, figures
    assert not run.unreachable, figures
    # Every upload the client started completed, with the client's bytes in storage.
    assert run.undrained == 0 and verdict.in_progress == 0, figures
    assert verdict.started > 0 and verdict.completed == verdict.started, figures

    # The global cap held; the sampler did see FFmpeg running (else the check proves nothing).
    assert 1 <= scenario.sampler.max_ffmpeg <= FFMPEG_CAP, figures

    # Every auto=1 clip became playable, the killed worker's job included (taken over).
    autos = [r.vid for r in run.records if r.auto]
    assert len(autos) == CONFIG.max_auto, figures
    assert all(run.playable.get(vid) == "playable" for vid in autos), (run.playable, figures)
    attempts = sql(deployment.env, "SELECT MAX(attempts) FROM transcode_job")[0][0]
    assert attempts >= 2, f"no job was retried after the worker was killed\n{figures}"
