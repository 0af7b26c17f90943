"""After a load run: is every upload intact or resumable, and the figures to print."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadkit.client import UploadRecord
from bench.loadkit.procs import Deployment
from bench.loadkit.sampler import ProcSampler
from bench.loadkit.scenario import LoadRun
from tests.support.api import Api
from tests.support.db import sql


@dataclass
class Verdict:
    """Upload outcomes as the server's durable record tells them."""

    started: int = 0  # uploads that got an upload id
    completed: int = 0  # stored bytes whose MD5 is the client's
    in_progress: int = 0  # not finished, resumable (GET /video/upload/resume says uploading)
    corrupted: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 4xx the client could not get past
    not_started: int = 0  # init never answered (no upload id, nothing to lose)

    @property
    def intact(self) -> bool:
        """Nothing lost, nothing corrupted, nothing refused."""
        return not (self.corrupted or self.lost or self.refused)

    def passed(self, max_ffmpeg: int, cap: int) -> bool:
        """Intact (an upload a client gave up on counts by what the server holds) and capped."""
        return self.intact and max_ffmpeg <= cap


def file_md5(path: Path) -> str:
    """MD5 of a file, read in 4 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_stored(dep: Deployment, record: UploadRecord) -> str:
    """'' when the video's stored source has the client's bytes; else what is wrong."""
    rows = sql(
        dep.env,
        "SELECT storage_uri, file_size, deleted_at FROM video WHERE id = :v",
        v=record.vid,
    )
    if not rows or rows[0][2] is not None or not rows[0][0]:
        return "lost: no live video row with a stored source"
    path = dep.storage / rows[0][0]
    if not path.is_file():
        return f"lost: {rows[0][0]} is not in storage"
    if not record.source.md5:  # completed without the client seeing every part hashed
        record.source.digest()
    if record.server_md5 and record.server_md5 != record.source.md5:
        return f"corrupted: the server reported md5 {record.server_md5}"
    got = file_md5(path)
    if got != record.source.md5 or path.stat().st_size != record.source.size:
        return f"corrupted: stored md5 {got}, size {path.stat().st_size}"
    return ""


def verify(dep: Deployment, run: LoadRun) -> Verdict:
    """Check every upload the client started against the database, storage and the API."""
    verdict = Verdict()
    api = Api(dep.api_urls[0], dep.app["app_key"], dep.app["app_secret"], check_contract=False)
    for record in run.records:
        label = f"vid {record.vid} upid {record.upid} ({record.source.size} B)"
        if not record.upid:
            if record.error:
                verdict.refused.append(f"{record.source.name}: {record.error}")
            else:
                verdict.not_started += 1
            continue
        verdict.started += 1
        if record.error:
            verdict.refused.append(f"{label}: {record.error}")
        if not record.completed:
            answer = api.call("GET", "/video/upload/resume", {"upid": record.upid})
            status = answer.json().get("status") if answer.status_code == 200 else None
            if status == "uploading":
                verdict.in_progress += 1
                continue
            if status != "uploaded":
                verdict.lost.append(f"{label}: resume answered {answer.status_code} {answer.text}")
                continue
            record.server_md5 = str(answer.json().get("md5", ""))
        problem = check_stored(dep, record)
        if problem.startswith("lost"):
            verdict.lost.append(f"{label}: {problem}")
        elif problem:
            verdict.corrupted.append(f"{label}: {problem}")
        else:
            verdict.completed += 1
    return verdict


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def report(run: LoadRun, verdict: Verdict, sampler: ProcSampler, cap: int) -> list[str]:
    """The printed figures, one line each."""
    lines = [
        f"uploads: started {verdict.started}, completed {verdict.completed},"
        f" in progress (resumable) {verdict.in_progress}, corrupted {len(verdict.corrupted)},"
        f" lost {len(verdict.lost)}, refused {len(verdict.refused)},"
        f" init unanswered {verdict.not_started}, still running at the drain limit {run.undrained},"
        f" client gave up {len(run.unreachable)}"
    ]
    for kind, values in sorted(run.stats.latencies.items()):
        lines.append(
            f"latency {kind:8s} n={len(values):6d}  p50 {pct(values, 50) * 1000:8.1f} ms"
            f"  p99 {pct(values, 99) * 1000:8.1f} ms"
        )
    errors = ", ".join(f"{s}: {n}" for s, n in sorted(run.stats.server_errors.items())) or "none"
    conn = ", ".join(f"{k}: {n}" for k, n in sorted(run.stats.connection_errors.items())) or "none"
    resumed = sum(r.resumes for r in run.records)
    lines.append(f"5xx answers: {errors}; connection errors: {conn}")
    lines.append(
        f"failovers to the other instance: {run.stats.failovers}, upload resumes: {resumed}"
    )
    lines.append(
        f"most FFmpeg processes at once: {sampler.max_ffmpeg} (cap {cap},"
        f" {sampler.samples} samples of /proc)"
    )
    rss = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(sampler.peak_rss.items()))
    lines.append(f"peak RSS: {rss}")
    sent = sum(r.sent_bytes for r in run.records)
    secs = max(run.load_seconds, 1e-9)
    lines.append(
        f"throughput: {sent / 1e6:.0f} MB of parts in {secs:.1f} s = {sent / 1e6 / secs:.1f} MB/s,"
        f" {run.stats.answered} calls answered = {run.stats.answered / secs:.0f} calls/s"
    )
    playable = sum(1 for s in run.playable.values() if s == "playable")
    lines.append(f"auto=1 clips: {len(run.playable)} completed uploads, {playable} playable")
    for fault in run.faults:
        lines.append(f"fault at {fault.at:6.1f} s: {fault.name} ({fault.target})")
    for problem in (verdict.corrupted + verdict.lost + verdict.refused + run.unreachable)[:20]:
        lines.append(f"  ! {problem}")
    return lines
