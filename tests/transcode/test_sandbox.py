"""The sandboxed runner with real FFmpeg: ladder transcodes, snapshots, watchdog, limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import media
from vasset.transcode.commands import (
    build_snapshots,
    build_transcode,
    master_playlist,
    snapshot_times,
)
from vasset.transcode.ladder import Rendition, plan_ladder, snapshot_size
from vasset.transcode.outputs import mp4_boxes, verify_outputs
from vasset.transcode.probe import InvalidOutput, ffprobe_json, probe
from vasset.transcode.sandbox import (
    FfmpegError,
    Outcome,
    Progress,
    run_ffmpeg,
    timeout_for,
)

# Rungs sized for the 320x180 test clips, so that a real ladder runs in well under a second.
TINY_LADDER = [
    Rendition(
        name=f"{h}p",
        height=h,
        video_bitrate=h * 1000,
        max_rate=h * 1100,
        buffer_size=h * 1500,
        audio_bitrate=48_000,
    )
    for h in (90, 144, 360)
]


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return media.shared_dir(tmp_path_factory)


def _pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains marker (a psutil-free /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _endless(marker: str, *, realtime: bool = True) -> list[str]:
    """An FFmpeg that runs forever, tagged so that the test can find it in /proc."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"]
    argv += ["-progress", "pipe:1"]
    if realtime:
        argv.append("-re")
    return [*argv, "-f", "lavfi", "-i", "testsrc2=size=64x64", "-metadata", f"title={marker}",
            "-f", "null", "-"]  # fmt: skip


async def transcode(source: Path, out: Path, **kw):
    info = probe(source)
    plans = plan_ladder(info.width, info.height, info.rotation, TINY_LADDER)
    cmd = build_transcode(
        source,
        plans,
        out,
        has_audio=info.has_audio,
        frame_rate=info.frame_rate,
        demuxer=info.demuxer,
        video_stream=info.video_stream,
        audio_stream=info.audio_stream,
        **kw,
    )
    cmd.make_directories()
    progress: list[Progress] = []
    result = await run_ffmpeg(
        cmd.argv,
        timeout=timeout_for(info.duration_ms, 10, 30),
        stall_timeout=20,
        memory_limit=2 << 30,
        duration_ms=info.duration_ms,
        on_progress=progress.append,
    )
    result.raise_for_outcome()
    verify_outputs(cmd)
    return info, cmd, progress


def _check_hls(cmd) -> None:
    """One variant per rendition, with segments and the fMP4 init beside its playlist."""
    Path(cmd.master_path).write_text(master_playlist(cmd.outputs))
    master = Path(cmd.master_path).read_text()
    assert "90p/index.m3u8" in master and "144p/index.m3u8" in master
    assert "RESOLUTION=256x144" in master and 'CODECS="avc1.64' in master
    for out in cmd.outputs:
        playlist = Path(out.hls_playlist).read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
        assert '#EXT-X-MAP:URI="init.mp4"' in playlist
        segments = [line for line in playlist.splitlines() if line.endswith(".m4s")]
        assert segments and all((Path(out.hls_dir) / s).stat().st_size for s in segments)


def _suffixes(directory: str) -> set[str]:
    return {p.suffix for p in Path(directory).iterdir()}


def _remove(pattern_dir: str, pattern: str) -> None:
    next(Path(pattern_dir).glob(pattern)).unlink()


def _image(path: str) -> tuple[str, int, int]:
    """Codec and size of an image (ffprobe plainly: probe() refuses images by design)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of",
         "csv=p=0", path],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    codec, width, height = out.split(",")
    return codec, int(width), int(height)


def _stream(path: str, kind: str) -> dict | None:
    streams = ffprobe_json(path)["streams"]
    return next((s for s in streams if s["codec_type"] == kind), None)


async def test_ladder_transcode_landscape(clips, tmp_path):
    info, cmd, progress = await transcode(media.landscape(clips), tmp_path / "out")
    # 180p source: 90p and 144p rungs; 360p would be an upscale.
    assert [(o.name, o.width, o.height) for o in cmd.outputs] == [
        ("90p", 160, 90),
        ("144p", 256, 144),
    ]
    for out in cmd.outputs:
        video = _stream(out.mp4_path, "video")
        assert (video["width"], video["height"]) == (out.width, out.height)
        assert video["codec_name"] == "h264" and video["profile"] == "High"
        assert video["pix_fmt"] == "yuv420p"
        assert _stream(out.mp4_path, "audio")["codec_name"] == "aac"
        boxes = mp4_boxes(out.mp4_path)
        assert boxes.index("moov") < boxes.index("mdat")  # faststart
        # The renditions are themselves acceptable sources.
        rendition = probe(out.mp4_path)
        assert abs(rendition.duration_ms - info.duration_ms) < 200
        assert rendition.rotation == 0

    _check_hls(cmd)

    # Progress: fractions rise and the last report is the end.
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and progress[-1].done


async def test_rotation_honoured(clips, tmp_path):
    _, cmd, _ = await transcode(media.portrait_rotated(clips), tmp_path / "out", hls=False)
    assert [(o.width, o.height) for o in cmd.outputs] == [(90, 160), (144, 256)]
    for out in cmd.outputs:
        video = _stream(out.mp4_path, "video")
        assert (video["width"], video["height"]) == (out.width, out.height)
        assert not video.get("side_data_list")  # pixels turned, no display matrix left
        assert probe(out.mp4_path).rotation == 0


async def test_odd_size_and_no_audio(clips, tmp_path):
    _, cmd, _ = await transcode(media.odd_size(clips), tmp_path / "odd", hls=False)
    assert all(o.width % 2 == 0 and o.height % 2 == 0 for o in cmd.outputs)
    _, cmd, _ = await transcode(
        media.no_audio(clips), tmp_path / "silent", hls_segment_type="mpegts"
    )
    for out in cmd.outputs:
        assert _stream(out.mp4_path, "audio") is None
        assert "mp4a" not in out.codecs
        assert ".ts" in _suffixes(out.hls_dir)


async def test_variable_frame_rate_source(clips, tmp_path):
    _, cmd, _ = await transcode(media.variable_frame_rate(clips), tmp_path / "vfr", hls=False)
    assert len(cmd.outputs) == 2


async def test_verify_outputs_catches_missing_segments(clips, tmp_path):
    _, cmd, _ = await transcode(media.landscape(clips), tmp_path / "out")
    first = cmd.outputs[0]
    _remove(first.hls_dir, "seg_*.m4s")
    with pytest.raises(InvalidOutput):
        verify_outputs(cmd)
    os.unlink(first.mp4_path)
    with pytest.raises(InvalidOutput):
        verify_outputs(cmd)


async def test_snapshots(clips, tmp_path):
    for clip, expected in ((media.landscape, (320, 180)), (media.portrait_rotated, (180, 320))):
        info = probe(clip(clips))
        width, height = snapshot_size(info.width, info.height, info.rotation)
        assert (width, height) == expected
        times = snapshot_times(info.duration_ms, 10)
        cmd = build_snapshots(
            clip(clips), tmp_path / clip.__name__, times, width=width, height=height,
            demuxer=info.demuxer, video_stream=info.video_stream,
        )  # fmt: skip
        os.makedirs(tmp_path / clip.__name__)
        result = await run_ffmpeg(cmd.argv, timeout=30, stall_timeout=20)
        result.raise_for_outcome()
        for path in cmd.paths:
            assert _image(path) == ("mjpeg", *expected)


async def test_bad_input_fails_permanently(clips):
    argv = ["ffmpeg", "-nostdin", "-i", str(media.text_file(clips)), "-f", "null", "-"]
    result = await run_ffmpeg(argv, timeout=30, stall_timeout=20)
    assert result.outcome is Outcome.FAILED and result.returncode == 1
    assert result.permanent and result.reason == "bad_input" and result.code == "CorruptMedia"
    assert "Invalid data" in result.stderr_tail
    with pytest.raises(FfmpegError) as info:
        result.raise_for_outcome()
    assert info.value.code == "CorruptMedia" and info.value.permanent


async def test_disguised_playlist_refused_by_transcode(clips, tmp_path):
    plans = plan_ladder(320, 180, 0, TINY_LADDER)
    cmd = build_transcode(
        media.hls_disguised(clips), plans, tmp_path, has_audio=True, frame_rate=25, hls=False
    )
    result = await run_ffmpeg(cmd.argv, timeout=30, stall_timeout=20)
    assert result.outcome is Outcome.FAILED and result.permanent
    assert "not on whitelist" in result.stderr_tail


async def test_timeout_kills_the_whole_group():
    marker = uuid.uuid4().hex
    # A shell leader with two FFmpeg children: killing only the leader would orphan them.
    script = " & ".join([" ".join(_endless(marker + "a")), " ".join(_endless(marker + "b"))])
    argv = ["sh", "-c", script + " & wait"]
    result = await run_ffmpeg(argv, timeout=1.0, stall_timeout=30)
    assert result.outcome is Outcome.TIMEOUT
    assert result.returncode == -9
    assert 1.0 <= result.elapsed < 5
    assert result.code == "TranscodeTimeout" and not result.permanent
    await asyncio.sleep(0.1)
    assert _pids_with(marker) == []


async def test_stall_watchdog(tmp_path):
    fifo = tmp_path / "never.fifo"
    os.mkfifo(fifo)
    # Nobody ever writes: FFmpeg blocks opening its input and never reports progress.
    argv = ["ffmpeg", "-nostdin", "-progress", "pipe:1", "-i", str(fifo), "-f", "null", "-"]
    result = await run_ffmpeg(argv, timeout=30, stall_timeout=0.5)
    assert result.outcome is Outcome.STALLED and result.code == "TranscodeStalled"
    assert 0.5 <= result.elapsed < 3
    assert _pids_with(str(fifo)) == []


async def test_progress_keeps_a_slow_run_alive():
    # -re runs at real time: slow, but reporting progress (every 0.5 s), so the stall verdict
    # never comes even though the run outlives stall_timeout; the wall clock ends it.
    marker = uuid.uuid4().hex
    seen: list[Progress] = []
    result = await run_ffmpeg(
        _endless(marker), timeout=4.0, stall_timeout=2.0, on_progress=seen.append
    )
    assert result.outcome is Outcome.TIMEOUT
    assert len(seen) >= 2 and seen[-1].out_time_ms > 0 and seen[-1].fraction is None
    assert _pids_with(marker) == []


async def test_cancel_event():
    marker = uuid.uuid4().hex
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, event.set)
    result = await run_ffmpeg(_endless(marker), timeout=30, stall_timeout=30, cancel_event=event)
    assert result.outcome is Outcome.CANCELLED and result.code == "TranscodeCancelled"
    assert result.elapsed < 3
    assert _pids_with(marker) == []


async def test_task_cancellation_kills_and_reaps():
    marker = uuid.uuid4().hex
    task = asyncio.create_task(run_ffmpeg(_endless(marker), timeout=30, stall_timeout=30))
    await asyncio.sleep(0.3)
    assert _pids_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _pids_with(marker) == []


async def test_memory_limit_fails_cleanly():
    # A 4K x264 encode cannot fit in 400 MiB of address space: malloc fails, FFmpeg exits.
    argv = ["ffmpeg", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=3840x2160", "-frames:v",
            "5", "-c:v", "libx264", "-f", "null", "-"]  # fmt: skip
    result = await run_ffmpeg(argv, timeout=30, stall_timeout=20, memory_limit=400 << 20)
    assert result.outcome is Outcome.FAILED
    assert result.reason == "out_of_memory" and result.code == "TranscodeOutOfMemory"
    assert not result.permanent
    assert result.elapsed < 10
    assert "malloc" in result.message() or "allocate" in result.message()


async def test_cpu_limit_kills():
    marker = uuid.uuid4().hex
    # FFmpeg traps SIGXCPU and exits with 255; at info level it says which signal it got.
    argv = _endless(marker, realtime=False)
    argv[argv.index("-loglevel") + 1] = "info"
    result = await run_ffmpeg(argv, timeout=30, stall_timeout=30, cpu_limit=0.5)
    assert result.outcome is Outcome.KILLED and result.reason == "cpu_limit"
    assert result.returncode == 255
    assert result.code == "TranscodeKilled"
    assert _pids_with(marker) == []


async def test_async_progress_callback_and_failing_callback(clips, tmp_path):
    calls: list[float | None] = []

    async def record(p: Progress) -> None:
        calls.append(p.fraction)
        raise RuntimeError("callback bug")  # must not break the run

    info = probe(media.no_audio(clips))
    plans = plan_ladder(info.width, info.height, 0, TINY_LADDER)
    cmd = build_transcode(
        media.no_audio(clips), plans, tmp_path, has_audio=False, frame_rate=25, hls=False
    )
    result = await run_ffmpeg(
        cmd.argv, timeout=30, stall_timeout=20, duration_ms=info.duration_ms, on_progress=record
    )
    assert result.ok and calls and calls[-1] == 1.0


def test_timeout_for():
    assert timeout_for(3_000, 10, 120) == 120
    assert timeout_for(600_000, 10, 120) == 6000
    assert timeout_for(None, 10, 120) == 120
