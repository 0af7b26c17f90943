"""Transcoding end to end: real API, `vasset worker` processes and FFmpeg, on local disk and OSS.

The module runs its own deployment (database, Redis prefix, storage, API) and a fleet of two
workers, so no other test's jobs reach these workers and no other worker takes these jobs.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.media_flow import oss_stack as run_oss_stack
from tests.support.media_flow import upload_answer as upload
from tests.support.workers import Stack, job_ffmpeg, long_clip, medium_clip, wait_until
from vasset.videos.state import TRANSITIONS, VideoStatus

LADDER = "240p,360p,480p"
IMAGE_COUNT = 3
HAPPY_PATH = ["uploaded", "transcode_queued", "transcoding", "transcode_succeeded", "playable"]
TERMINAL = {"playable", "transcode_failed"}


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("e2e"),
        "e2e",
        VASSET_LADDER=LADDER,
        VASSET_IMAGE_COUNT=str(IMAGE_COUNT),
    ).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def fleet(stack):
    with stack.fleet("fleet", VASSET_FFMPEG_GLOBAL_LIMIT="2") as fleet:
        fleet.start(2)
        yield fleet


@pytest.fixture
def api(stack, fleet) -> Api:
    return stack.api()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


# ---- helpers


def status(api: Api, vid: int) -> dict:
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


def follow(api: Api, vid: int, first: str | None = None, timeout: float = 60) -> list[str]:
    """Statuses seen while polling every 20 ms until a terminal one (consecutive ones merged)."""
    walk = [first] if first else []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(api, vid)["status"]
        if not walk or walk[-1] != now:
            walk.append(now)
        if now in TERMINAL:
            return walk
        time.sleep(0.02)
    raise AssertionError(f"video {vid} still {walk[-1]} after {timeout}s (walk {walk})")


def reachable(a: str, b: str) -> bool:
    """Whether the lifecycle can lead from a to b (sampling may miss states in between)."""
    seen, todo = set(), [VideoStatus(a)]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt == b:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def assert_happy_walk(walk: list[str]) -> None:
    assert walk[-1] == "playable", walk
    assert all(reachable(a, b) for a, b in itertools.pairwise(walk)), walk
    # One uninterrupted job: the statuses seen are the happy path in order, possibly with gaps.
    positions = [HAPPY_PATH.index(s) for s in walk]
    assert positions == sorted(positions), walk


def children(env, vid: int, live: bool = True) -> list[dict]:
    where = "AND deleted_at IS NULL" if live else ""
    rows = sql(
        env,
        "SELECT id, definition, format, video_width, video_height, storage_uri, status,"
        f" media_info, deleted_at FROM video WHERE parent_id = :v {where} ORDER BY id",
        v=vid,
    )
    keys = ("id", "definition", "format", "width", "height", "key", "status", "info", "deleted")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def jobs_of(env, vid: int) -> list[dict]:
    rows = sql(
        env,
        "SELECT id, state, attempts, error, lease_token, kind FROM transcode_job"
        " WHERE video_id = :v ORDER BY id",
        v=vid,
    )
    keys = ("id", "state", "attempts", "error", "token", "kind")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def prefix_of(key: str) -> str:
    return "/".join(key.split("/")[:3]) + "/"


def media_files(stack: Stack, vid: int) -> list[str]:
    base = stack.storage / "media" / str(vid)
    if not base.exists():
        return []
    return sorted(p.relative_to(stack.storage).as_posix() for p in base.rglob("*") if p.is_file())


def assert_temp_clean(stack: Stack, timeout: float = 10) -> None:
    """VASSET_TEMP_DIR ends up empty (call when no job of the module is running)."""
    wait_until(
        lambda: not any(stack.temp_dir.iterdir()),
        timeout,
        f"an empty temp dir, still {sorted(p.name for p in stack.temp_dir.iterdir())}",
    )


def ffprobe_video(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    streams = json.loads(out.stdout)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    return {
        "width": video["width"],
        "height": video["height"],
        "audio": any(s["codec_type"] == "audio" for s in streams),
        "rotation": int(
            next(
                (d.get("rotation", 0) for d in video.get("side_data_list", []) if "rotation" in d),
                0,
            )
        ),
    }


def check_renditions(stack: Stack, vid: int, display: tuple[int, int]) -> list[dict]:
    """One set of renditions: children of vid, under one prefix, even, never upscaled."""
    rows = children(stack.env, vid)
    assert rows, "no renditions"
    assert len({prefix_of(r["key"]) for r in rows}) == 1, rows
    mp4 = [r for r in rows if r["format"] == "mp4"]
    hls = [r for r in rows if r["format"] == "hls"]
    assert len({r["definition"] for r in mp4}) == len(mp4), "duplicate mp4 renditions"
    assert sorted(r["definition"] for r in hls) == sorted(r["definition"] for r in mp4)
    for r in mp4:
        assert r["definition"] and r["status"] == "playable"
        assert r["width"] % 2 == 0 and r["height"] % 2 == 0, r
        assert r["width"] <= display[0] and r["height"] <= display[1], (r, display)
        # the stored file is what the row says
        probed = ffprobe_video(stack.storage / r["key"])
        assert (probed["width"], probed["height"]) == (r["width"], r["height"]), r
        assert probed["rotation"] == 0
    return mp4


# ---- 1. the state machine, media info, renditions, snapshots


def test_upload_with_auto_walks_the_lifecycle_to_playable(stack, api, clips):
    done = upload(api, media.landscape(clips), auto=1)
    vid = done["vid"]
    assert_happy_walk(follow(api, vid, first=done["status"]))
    final = status(api, vid)
    assert final["playable"] is True and final["progress"] == 100 and final["error"] is None

    info = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert (info["video_width"], info["video_height"]) == (320, 180)
    assert abs(info["duration"] - 3000) <= 100
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["rotation"] == 0 and info["format"] == "MPEG-4"
    assert info["frame_rate"] == 25 and info["bitrate"] > 0

    mp4 = check_renditions(stack, vid, (320, 180))
    # 320x180 is below the lowest rung: one rendition at the source's own size, never upscaled.
    assert [(r["definition"], r["width"], r["height"]) for r in mp4] == [("240p", 320, 180)]
    # the ladder's one video rendition, and the audio-only M4A (the source has audio)
    assert {r["definition"] for r in info["renditions"]} == {"240p", "audio"}
    rows = children(stack.env, vid)
    assert all(r["key"].startswith(f"media/{vid}/") for r in rows)
    assert all((stack.storage / r["key"]).is_file() for r in rows)

    snaps = sql(
        stack.env,
        "SELECT image_index, time_ms, width, height, storage_uri FROM video_snapshot"
        " WHERE video_id = :v ORDER BY image_index",
        v=vid,
    )
    assert [s[0] for s in snaps] == list(range(IMAGE_COUNT))
    assert [s[1] for s in snaps] == sorted(s[1] for s in snaps) and snaps[-1][1] < 3000
    assert all((s[2], s[3]) == (320, 180) for s in snaps)
    assert all((stack.storage / s[4]).is_file() for s in snaps)
    assert {prefix_of(s[4]) for s in snaps} == {prefix_of(rows[0]["key"])}

    (job,) = jobs_of(stack.env, vid)
    assert job["state"] == "succeeded" and job["attempts"] == 1 and job["kind"] == "transcode"
    assert_temp_clean(stack)
    assert_rendition_ids_are_not_vids(stack, api, vid, rows)

    # Deleting the video leaves no empty folders behind in local storage.
    ((source_key,),) = sql(stack.env, "SELECT storage_uri FROM video WHERE id = :v", v=vid)
    assert api.call("POST", "/video/delete", {"vid": vid}).status_code == 200
    assert not (stack.storage / f"media/{vid}").exists()
    assert not (stack.storage / source_key).parent.exists()


def assert_rendition_ids_are_not_vids(stack: Stack, api: Api, vid: int, rows: list[dict]) -> None:
    """A rendition row's id is never a vid: every call answers 404 and nothing is touched."""
    for row in rows:
        rid = row["id"]
        for method, path in (
            ("GET", "/video/status"),
            ("GET", "/video/mediainfo"),
            ("GET", "/video/playurl"),
            ("GET", "/video/snapshot"),
            ("POST", "/video/transcode"),
            ("POST", "/video/retranscode"),
            ("POST", "/video/delete"),
        ):
            resp = api.call(method, path, {"vid": rid})
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json()["code"] == "VideoNotFound", (path, resp.text)
    # The refused delete removed nothing: the parent stays playable with all its files.
    assert status(api, vid)["playable"] is True
    assert [r["id"] for r in children(stack.env, vid)] == [r["id"] for r in rows]
    assert all((stack.storage / r["key"]).is_file() for r in rows)


SHAPES = {
    # name: (clip, display size, expected renditions as (definition, width, height))
    "portrait_rotated": (media.portrait_rotated, (180, 320), [("240p", 180, 320)]),
    "odd_size": (media.odd_size, (321, 241), [("240p", 320, 240)]),
    "no_audio": (media.no_audio, (320, 180), [("240p", 320, 180)]),
    "variable_frame_rate": (media.variable_frame_rate, (320, 180), [("240p", 320, 180)]),
    "medium_360p": (medium_clip, (640, 360), [("240p", 426, 240), ("360p", 640, 360)]),
}


def test_clip_shapes_give_even_never_upscaled_renditions(stack, api, clips):
    vids = {name: upload(api, make(clips), auto=1)["vid"] for name, (make, _, _) in SHAPES.items()}
    for name, vid in vids.items():
        walk = follow(api, vid)
        assert walk[-1] == "playable", (name, status(api, vid))
    for name, vid in vids.items():
        _, display, expected = SHAPES[name]
        info = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
        assert (info["video_width"], info["video_height"]) == display, (name, info)
        mp4 = check_renditions(stack, vid, display)
        got = [(r["definition"], r["width"], r["height"]) for r in mp4]
        assert got == expected, (name, got)
        for r in mp4:
            probed = ffprobe_video(stack.storage / r["key"])
            assert probed["audio"] is (name != "no_audio"), name
            codecs = json.loads(r["info"])["codecs"]
            assert ("mp4a" in codecs) is (name != "no_audio"), (name, codecs)
        if name == "portrait_rotated":
            assert info["rotation"] == 90
            assert all(r["height"] > r["width"] for r in mp4)
        if name == "no_audio":
            assert info["audio_codec"] is None
    assert_temp_clean(stack)


# ---- 2. POST /video/transcode on existing videos


def test_transcode_an_uploaded_video_with_chosen_definitions(stack, api, clips):
    done = upload(api, medium_clip(clips), auto=0)
    vid = done["vid"]
    time.sleep(0.3)
    assert status(api, vid)["status"] == "uploaded" and jobs_of(stack.env, vid) == []

    bad = api.call("POST", "/video/transcode", {"vid": vid, "definitions": "1080p"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter", bad.text
    r = api.call("POST", "/video/transcode", {"vid": vid, "definitions": "240p"})
    assert r.status_code == 200, r.text
    assert r.json() == {"vid": vid, "status": "transcode_queued"}
    assert_happy_walk(follow(api, vid, first="uploaded"))
    mp4 = check_renditions(stack, vid, (640, 360))
    assert [(r["definition"], r["width"], r["height"]) for r in mp4] == [("240p", 426, 240)]
    assert [r["definition"] for r in children(stack.env, vid)] == ["240p", "240p", "audio"]


def test_transcode_of_another_apps_video_or_an_unfinished_upload_is_refused(stack, api, clips):
    other_app = json.loads(stack.cli("apps", "create", "other", "--json"))
    other = Api(stack.server.url, other_app["app_key"], other_app["app_secret"])
    vid = upload(api, media.landscape(clips), auto=0)["vid"]
    r = other.call("POST", "/video/transcode", {"vid": vid})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound", r.text
    r = other.call("POST", "/video/retranscode", {"vid": vid})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound", r.text
    assert jobs_of(stack.env, vid) == [] and status(api, vid)["status"] == "uploaded"

    init = api.init("partial.mp4", os.urandom(300 * 1024), 100 * 1024).json()
    (pending,) = sql(
        stack.env, "SELECT video_id FROM upload WHERE upload_id = :u", u=init["upload_id"]
    )
    r = api.call("POST", "/video/transcode", {"vid": pending[0]})
    assert r.status_code == 409 and r.json()["code"] == "InvalidState", r.text
    assert jobs_of(stack.env, pending[0]) == []


# ---- 3. bad input fails at once, cleanly


class OpenDetector:
    """Notices any process opening a FIFO for reading (a writer's non-blocking open succeeds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading
                pass
            else:
                self.opened += 1
                os.close(fd)  # the reader sees end of file
            time.sleep(0.002)

    def __enter__(self) -> OpenDetector:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join()


def test_bad_inputs_fail_once_with_a_clear_error_and_leave_nothing(stack, api, clips, tmp_path):
    secret = tmp_path / "secret.ts"
    with OpenDetector(secret) as detector:
        # The detector works: a reader opening the FIFO is seen.
        reader = os.open(secret, os.O_RDONLY | os.O_NONBLOCK)
        wait_until(lambda: detector.opened, 5, "the detector to see a reader")
        os.close(reader)
        seen_by_self = detector.opened

        playlist = tmp_path / "playlist.mp4"
        playlist.write_text(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n"
            f"#EXTINF:3.0,\n{secret}\n#EXT-X-ENDLIST\n"
        )
        cases = {
            "text": (media.text_file(clips), "UnsupportedMedia:"),
            "hls_disguised": (playlist, "UnsupportedMedia:"),
            "audio_only": (media.audio_only(clips), "NotAVideo:"),
            "image": (media.image(clips), "NotAVideo:"),
            "truncated": (media.truncated(clips), "CorruptMedia:"),
        }
        vids = {name: upload(api, path, auto=1)["vid"] for name, (path, _) in cases.items()}
        for name, vid in vids.items():
            assert follow(api, vid)[-1] == "transcode_failed", name
        time.sleep(0.5)
        opened_by_others = detector.opened - seen_by_self
    assert opened_by_others == 0, "something opened the file the playlist points at"

    for name, vid in vids.items():
        _, prefix = cases[name]
        answer = status(api, vid)
        assert answer["playable"] is False and answer["error"].startswith(prefix), (name, answer)
        (job,) = jobs_of(stack.env, vid)
        assert job["state"] == "failed" and job["attempts"] == 1, (name, job)
        assert job["error"].startswith(prefix), (name, job)
        assert children(stack.env, vid, live=False) == [], name
        assert media_files(stack, vid) == [], name
    assert "hls" in status(api, vids["hls_disguised"])["error"].lower()
    assert "truncated" in status(api, vids["truncated"])["error"]
    assert "audio only" in status(api, vids["audio_only"])["error"]
    assert "image" in status(api, vids["image"])["error"]
    assert_temp_clean(stack)


# ---- 7. retranscode


def running_job(env, vid: int) -> dict | None:
    jobs = [j for j in jobs_of(env, vid) if j["state"] == "running"]
    return jobs[0] if jobs else None


def wait_ladder_running(env, vid: int, timeout: float = 30) -> tuple[dict, list[int]]:
    """The running job of vid once its ladder FFmpeg runs, and that FFmpeg's pids."""

    def probe():
        job = running_job(env, vid)
        pids = job_ffmpeg(job["id"]) if job else []
        return (job, pids) if pids else None

    return wait_until(probe, timeout, f"the ladder FFmpeg of video {vid}", interval=0.02)


def gone(pids: list[int]) -> bool:
    """Whether none of pids is a running process any more (zombies count as gone)."""
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            return False
    return True


def test_retranscode_while_transcoding_cancels_the_running_job(stack, api, clips):
    vid = upload(api, long_clip(clips), auto=1)["vid"]
    first, pids = wait_ladder_running(stack.env, vid)
    r = api.call("POST", "/video/retranscode", {"vid": vid})
    assert r.status_code == 200 and r.json()["status"] == "transcode_queued", r.text
    # The running attempt notices at its next heartbeat (1 s) and kills its FFmpeg.
    wait_until(lambda: gone(pids), 5, "the superseded FFmpeg to die")
    assert follow(api, vid)[-1] == "playable"

    old, new = jobs_of(stack.env, vid)
    assert old["id"] == first["id"] and old["state"] == "cancelled" and old["error"] == "superseded"
    assert new["state"] == "succeeded" and new["kind"] == "retranscode" and new["attempts"] == 1
    mp4 = check_renditions(stack, vid, (640, 360))
    assert [r["definition"] for r in mp4] == ["240p", "360p"]
    # nothing of the cancelled attempt survives: no rows, no objects, no temp files
    assert len(children(stack.env, vid, live=False)) == 5  # 2 MP4, 2 HLS, the M4A
    published = prefix_of(mp4[0]["key"])
    wait_until(
        lambda: all(k.startswith(published) for k in media_files(stack, vid)),
        5,
        "only the published prefix in storage",
    )
    assert_temp_clean(stack)


def test_retranscode_of_a_playable_video_swaps_renditions_atomically(stack, api, clips):
    vid = upload(api, media.landscape(clips), auto=1)["vid"]
    assert follow(api, vid)[-1] == "playable"
    before = children(stack.env, vid)
    old_prefix = prefix_of(before[0]["key"])
    old_files = media_files(stack, vid)
    assert old_files and all(f.startswith(old_prefix) for f in old_files)

    # the specification's spelling
    r = api.call("POST", "/video/retransocde", {"vid": vid})
    assert r.status_code == 200 and r.json() == {"vid": vid, "status": "transcode_queued"}
    old_ids = frozenset(r["id"] for r in before)
    # `before` is a sample too (nothing changed the set since): a test stalled past the whole
    # retranscode still compares the set it finds with the one players had.
    sets = [old_ids]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ids = frozenset(r["id"] for r in children(stack.env, vid))
        if not sets or sets[-1] != ids:
            sets.append(ids)
        if status(api, vid)["status"] == "playable" and ids != old_ids:
            break
    # Players always find one whole set: the old one, then the new one, never a mix or nothing.
    assert len(sets) == 2 and sets[0] == old_ids and not (sets[1] & old_ids), sets

    after = children(stack.env, vid)
    new_prefix = prefix_of(after[0]["key"])
    assert new_prefix != old_prefix
    assert {(r["definition"], r["format"]) for r in after} == {
        (r["definition"], r["format"]) for r in before
    }
    retired = [r for r in children(stack.env, vid, live=False) if r["id"] in old_ids]
    assert len(retired) == len(before) and all(r["deleted"] for r in retired)
    # The old bytes go after the swap commits (players may read them until then), not with it.
    wait_until(
        lambda: all(f.startswith(new_prefix) for f in media_files(stack, vid)),
        10,
        "only the published prefix in storage",
    )
    files = media_files(stack, vid)
    assert files and all(f.startswith(new_prefix) for f in files), files
    assert all((stack.storage / r["key"]).is_file() for r in after)
    snaps = sql(stack.env, "SELECT storage_uri FROM video_snapshot WHERE video_id = :v", v=vid)
    assert len(snaps) == IMAGE_COUNT and all(s[0].startswith(new_prefix) for s in snaps)
    assert [j["kind"] for j in jobs_of(stack.env, vid)] == ["transcode", "retranscode"]


# ---- 8. delete while transcoding


def test_delete_while_transcoding_cancels_the_job(stack, api, clips):
    vid = upload(api, long_clip(clips), auto=1)["vid"]
    _, pids = wait_ladder_running(stack.env, vid)
    r = api.call("POST", "/video/delete", {"vid": vid})
    assert r.status_code == 200 and r.json() == {"vid": vid, "deleted": True}
    wait_until(lambda: gone(pids), 5, "the FFmpeg of the deleted video to die")
    (after,) = jobs_of(stack.env, vid)
    assert after["state"] == "cancelled"
    time.sleep(1.5)  # anything still to publish would have done so by now
    assert children(stack.env, vid) == []
    assert media_files(stack, vid) == []
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    assert_temp_clean(stack)


# ---- 10. the operator's CLI


def test_jobs_cli_lists_failed_jobs_and_requeues_one(stack, api, clips):
    # without the hash: a copy of its own, not an instant upload sharing another video's bytes
    vid = upload(api, media.landscape(clips), auto=0, with_hash=False)["vid"]
    (key,) = sql(stack.env, "SELECT storage_uri FROM video WHERE id = :v", v=vid)[0]
    source = stack.storage / key
    hidden = source.with_name("hidden")
    source.rename(hidden)  # a storage hiccup: the source cannot be read
    try:
        assert api.call("POST", "/video/transcode", {"vid": vid}).status_code == 200
        assert follow(api, vid)[-1] == "transcode_failed"
    finally:
        hidden.rename(source)
    (job,) = jobs_of(stack.env, vid)
    assert job["state"] == "failed" and job["attempts"] == 1

    listed = json.loads(stack.cli("jobs", "list", "--state", "failed", "--json"))
    mine = [j for j in listed if j["id"] == job["id"]]
    assert mine and mine[0]["vid"] == vid and mine[0]["state"] == "failed"
    assert mine[0]["error"] == job["error"] and mine[0]["attempts"] == 1
    assert all(j["state"] == "failed" for j in listed)

    out = json.loads(stack.cli("jobs", "requeue", str(job["id"])))
    assert out == {"requeued": [job["id"]]}
    assert follow(api, vid)[-1] == "playable"
    (again,) = jobs_of(stack.env, vid)
    assert again["id"] == job["id"] and again["state"] == "succeeded" and again["attempts"] == 1
    assert again["error"] is None
    listed = json.loads(stack.cli("jobs", "list", "--state", "failed", "--json"))
    assert job["id"] not in [j["id"] for j in listed]
    check_renditions(stack, vid, (320, 180))


# ---- the same lifecycle on the OSS test server


@pytest.fixture
def oss_stack(test_env, tmp_path, oss_server):
    yield from run_oss_stack(
        test_env,
        tmp_path / "oss",
        f"oss{os.getpid()}",
        oss_server.endpoint,
        VASSET_LADDER=LADDER,
        VASSET_IMAGE_COUNT=str(IMAGE_COUNT),
    )


def test_lifecycle_on_oss(oss_stack, oss_server, clips):
    api = oss_stack.api()
    with oss_stack.fleet("oss-fleet") as fleet:
        fleet.start(1)
        done = upload(api, medium_clip(clips), auto=1)
        vid = done["vid"]
        assert_happy_walk(follow(api, vid, first=done["status"]))
    info = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert (info["video_width"], info["video_height"], info["rotation"]) == (640, 360, 0)
    assert info["video_codec"] == "h264" and info["format"] == "MPEG-4"
    rows = children(oss_stack.env, vid)
    mp4 = [r for r in rows if r["format"] == "mp4"]
    assert [(r["definition"], r["width"], r["height"]) for r in mp4] == [
        ("240p", 426, 240),
        ("360p", 640, 360),
    ]
    assert len({prefix_of(r["key"]) for r in rows}) == 1
    stored = set(oss_server.object_keys())
    published = prefix_of(rows[0]["key"])
    for r in rows:
        assert "vasset/" + r["key"] in stored, r["key"]
    snaps = sql(oss_stack.env, "SELECT storage_uri FROM video_snapshot WHERE video_id = :v", v=vid)
    assert len(snaps) == IMAGE_COUNT and all("vasset/" + s[0] in stored for s in snaps)
    # every output object sits under the published prefix; the source was downloaded, not kept
    outputs = [k for k in stored if k.startswith(f"vasset/media/{vid}/")]
    assert outputs and all(k.startswith("vasset/" + published) for k in outputs)
    assert any(k.endswith("hls/master.m3u8") for k in outputs)
    assert_temp_clean(oss_stack)

    # playback on OSS: MP4s and snapshots are presigned OSS URLs; HLS playlists come through
    # the API, which rewrites every segment into a presigned OSS URL

    pu = api.call("GET", "/video/playurl", {"vid": vid}).json()
    mp4_urls = [u for u in pu["play_urls"] if u["format"] == "mp4"]
    assert mp4_urls and all(u["url"].startswith(oss_server.endpoint) for u in mp4_urls)
    for u in mp4_urls:
        got = httpx.get(u["url"])
        assert got.status_code == 200 and len(got.content) == u["size"]
    assert pu["cover_url"].startswith(oss_server.endpoint)
    assert httpx.get(pu["cover_url"]).content[:2] == b"\xff\xd8"
    master_url = next(u["url"] for u in pu["play_urls"] if u["format"] == "hls")
    assert master_url.startswith(oss_stack.server.url + "/play/")
    master = httpx.get(master_url)
    assert master.status_code == 200
    variants = [x for x in master.text.splitlines() if x and not x.startswith("#")]
    assert len(variants) == 3 and variants[-1] == "audio/index.m3u8"  # 240p, 360p, audio-only
    segments = 0
    for variant in variants:
        playlist = httpx.get(urljoin(master_url, variant))
        assert playlist.status_code == 200, playlist.text
        uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
        uris += [
            x.split('URI="')[1].split('"')[0] for x in playlist.text.splitlines() if 'URI="' in x
        ]
        for uri in uris:
            assert uri.startswith(oss_server.endpoint), uri  # presigned, straight to OSS
            assert httpx.get(uri).status_code == 200
            segments += 1
    assert segments >= 4
    # an hour and a bit later the presigned URLs are refused by OSS itself
    oss_server.clock_offset = 3700
    try:
        assert httpx.get(mp4_urls[0]["url"]).status_code == 403
    finally:
        oss_server.clock_offset = 0
