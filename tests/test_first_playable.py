"""Playable in seconds: HLS published while FFmpeg writes it (vasset/transcode/progressive.py).

Real `vasset serve` and `vasset worker` processes, real FFmpeg on a 15 s clip read at twice
real time (VASSET_FFMPEG_READRATE), so a ladder lasts several seconds and the early, partial
state is there to be seen: an EVENT playlist without #EXT-X-ENDLIST, served while the job runs.
No timing is asserted; what is asserted is what a player fetches at each moment.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests import media
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.db import sql
from tests.support.workers import Stack, job_ffmpeg, kill_group, long_clip, settle, wait_until
from tests.test_oss_uploads import oss  # noqa: F401 - the module's OSS test server fixture

EARLY = {
    "VASSET_LADDER": "240p,360p",
    "VASSET_IMAGE_COUNT": "2",
    "VASSET_FFMPEG_READRATE": "2",
    "VASSET_PLAYURL_CACHE_TTL": "0",
}
_URI = re.compile(r'URI="([^"]+)"')
PROBE = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height"]
PROBE += ["-of", "json"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return long_clip(media.shared_dir(tmp_path_factory))


@pytest.fixture(scope="module")
def local(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("early"), "early", **EARLY).start()
    yield stack
    stack.server.stop()


@pytest.fixture(scope="module")
def on_oss(test_env, tmp_path_factory, oss):  # noqa: F811
    stack = Stack(
        test_env,
        tmp_path_factory.mktemp("early_oss"),
        "early_oss",
        **EARLY,
        VASSET_STORAGE_URL=f"oss://{OSS_BUCKET}/early",
        VASSET_OSS_ENDPOINT=oss.endpoint,
        VASSET_OSS_BUCKET=OSS_BUCKET,
        VASSET_OSS_ACCESS_KEY_ID=OSS_ACCESS_KEY_ID,
        VASSET_OSS_ACCESS_KEY_SECRET=OSS_ACCESS_KEY_SECRET,
    ).start()
    yield stack
    stack.server.stop()


# ---- what a player sees


def status(api: Api, vid: int) -> dict:
    r = api.call("GET", "/video/status", {"vid": vid})
    assert r.status_code == 200, r.text
    return r.json()


def hls_url(api: Api, vid: int) -> str | None:
    """The HLS master URL playurl answers now, or None (409: nothing playable)."""
    r = api.call("GET", "/video/playurl", {"vid": vid})
    if r.status_code == 409:
        return None
    assert r.status_code == 200, r.text
    urls = [u["url"] for u in r.json()["play_urls"] if u["format"] == "hls"]
    return urls[0] if urls else None


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class Tree:
    """One pass over an HLS master: its variants' playlists and every object they name."""

    def __init__(self, master_url: str) -> None:
        self.master_url = master_url
        self.playlists: dict[str, str] = {}
        self.missing: list[str] = []  # named by a served playlist, yet not served
        # (init segment, first segment) of each variant; on OSS the names are presigned URLs.
        self.first: dict[str, tuple[bytes, bytes]] = {}

    def fetch(self, client: httpx.Client, keep: bool = False) -> Tree:
        master = client.get(self.master_url)
        if master.status_code != 200:
            self.missing.append(f"master {master.status_code}")
            return self
        for uri in (u for u in lines_of(master.text) if not u.startswith("#")):
            url = httpx.URL(self.master_url).join(uri)
            variant = client.get(url)
            if variant.status_code != 200:
                self.missing.append(f"{uri} {variant.status_code}")
                continue
            self.playlists[uri] = variant.text
            text = variant.text
            maps = _URI.findall(text)
            named = maps + [u for u in lines_of(text) if not u.startswith("#")]
            bodies = []
            for name in named:
                got = client.get(url.join(name))
                if got.status_code != 200 or not got.content:
                    self.missing.append(f"{uri} -> {name} {got.status_code}")
                elif keep and len(bodies) < 2:
                    bodies.append(got.content)
            if keep and len(maps) == 1 and len(bodies) == 2:
                self.first[uri] = (bodies[0], bodies[1])
        return self

    @property
    def ended(self) -> bool:
        return bool(self.playlists) and all("#EXT-X-ENDLIST" in t for t in self.playlists.values())

    def prefix(self) -> str:
        """The media/{vid}/{attempt}/ the master URL lies under."""
        return re.search(r"(media/\d+/[^/]+/)", self.master_url).group(1)


def ffprobe_height(tmp: Path, init: bytes, segment: bytes) -> int:
    """The video height FFmpeg reads from an fMP4 init segment followed by one segment."""
    path = tmp / "probe.mp4"
    path.write_bytes(init + segment)
    out = subprocess.run(
        [*PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(out.stdout)["streams"][0]["height"])


def event_types(stack: Stack, vid: int) -> list[tuple[str, dict]]:
    rows = sql(stack.env, "SELECT type, body FROM event WHERE video_id = :v ORDER BY seq", v=vid)
    return [(t, json.loads(b)["data"]) for t, b in rows]


def upload(api: Api, clip: Path, auto: int = 1) -> int:
    data = clip.read_bytes()
    done = api.upload(clip.name, data, len(data), auto=auto)
    assert done["status"] in ("uploaded", "transcode_queued"), done
    return done["vid"]


def first_playable(api: Api, vid: int) -> dict:
    def early():
        answer = status(api, vid)
        assert answer["status"] != "transcode_failed", answer
        return answer if answer["playable"] else None

    return wait_until(early, 90, f"video {vid} playable", interval=0.1)


def complete(api: Api, vid: int, timeout: float = 120) -> dict:
    def done():
        answer = status(api, vid)
        assert answer["status"] != "transcode_failed", answer
        return answer if answer["status"] == "playable" else None

    return wait_until(done, timeout, f"video {vid} complete", interval=0.2)


# ---- tests


@pytest.mark.parametrize("where", ["local", "on_oss"])
def test_playable_early_then_complete(request, where, clip, tmp_path):
    stack: Stack = request.getfixturevalue(where)
    api = stack.api()
    with stack.fleet("early") as fleet, httpx.Client(timeout=30) as client:
        fleet.start(1)
        vid = upload(api, clip)
        early = first_playable(api, vid)
        # Playable while the ladder still runs: transcoding, a partial ladder, HLS only.
        assert early["status"] == "transcoding" and early["ladder"] == "partial", early
        play = api.call("GET", "/video/playurl", {"vid": vid}).json()
        assert [(u["format"], u["definition"]) for u in play["play_urls"]] == [("hls", "auto")]
        mp4 = api.call("GET", "/video/playurl", {"vid": vid, "format": "mp4"})
        assert mp4.status_code == 409 and mp4.json()["code"] == "VideoNotPlayable"
        master = client.get(play["play_urls"][0]["url"])
        assert master.headers["cache-control"] == "private, no-cache"
        tree = Tree(play["play_urls"][0]["url"]).fetch(client, keep=True)
        assert not tree.missing, tree.missing
        lowest = next(iter(tree.playlists))
        assert lowest.startswith("240p/"), tree.playlists
        text = tree.playlists[lowest]
        # An EVENT playlist without its end: the ladder was still running when it was served.
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text, text
        assert "#EXT-X-START:TIME-OFFSET=0" in text
        assert ffprobe_height(tmp_path, *tree.first[lowest]) == 240
        types = [t for t, _ in event_types(stack, vid)]
        assert "video.playable" in types and "video.transcode.succeeded" not in types, types

        done = complete(api, vid)
        assert done["ladder"] == "complete" and done["playable"], done
        final = Tree(hls_url(api, vid)).fetch(client)
        assert not final.missing and final.ended, (final.missing, final.playlists)
        # the audio-only variant joins the master with the complete ladder (not progressively)
        assert sorted(final.playlists) == ["240p/index.m3u8", "360p/index.m3u8", "audio/index.m3u8"]
        assert all("#EXT-X-PLAYLIST-TYPE:VOD" in t for t in final.playlists.values())
        formats = {
            u["format"] for u in api.call("GET", "/video/playurl", {"vid": vid}).json()["play_urls"]
        }
        assert formats == {"mp4", "hls"}
        events = event_types(stack, vid)
        playable = [(i, d) for i, (t, d) in enumerate(events) if t == "video.playable"]
        succeeded = [i for i, (t, _) in enumerate(events) if t == "video.transcode.succeeded"]
        assert [d["ladder"] for _, d in playable] == ["partial", "complete"], events
        assert playable[0][0] < succeeded[0] < playable[1][0]
        assert playable[0][1]["status"] == "transcoding"
    settle(stack.env)


class Watcher(threading.Thread):
    """Polls playurl and fetches every playlist and object it names until stopped."""

    def __init__(self, api: Api, vid: int) -> None:
        super().__init__(daemon=True)
        self.api, self.vid = api, vid
        self.halt = threading.Event()
        self.missing: list[str] = []
        self.seen: list[tuple[str, bool]] = []  # (attempt prefix, ended) of each pass
        self.lost = 0  # passes, once HLS was offered, where playurl offered none
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.halt.is_set():
                try:
                    url = hls_url(self.api, self.vid)
                    if url is None:
                        self.lost += bool(self.seen)
                        time.sleep(0.05)
                        continue
                    tree = Tree(url).fetch(client)
                    self.missing += tree.missing
                    self.seen.append((tree.prefix(), tree.ended))
                except Exception as exc:  # reported by the test, never swallowed
                    self.errors.append(repr(exc))
                    return


def test_worker_killed_mid_ladder_never_breaks_a_player(local, clip):
    api = local.api()
    with local.fleet("killed") as fleet:
        (first,) = fleet.start(1)
        vid = upload(api, clip)
        watcher = Watcher(api, vid)
        watcher.start()
        try:
            first_playable(api, vid)
            job_id = sql(local.env, "SELECT MAX(id) FROM transcode_job WHERE video_id = :v", v=vid)
            job_id = job_id[0][0]
            ladder = job_ffmpeg(job_id)
            first.kill()  # SIGKILL mid-ladder: no cleanup runs
            for pid in ladder:
                kill_group(pid)
            assert status(api, vid)["playable"], "the partial set stays playable meanwhile"
            fleet.start(1)
            done = complete(api, vid)
            # A pass over a long tree may still be on the old set: let the player reach the new.
            wait_until(
                lambda: watcher.errors or (watcher.seen and watcher.seen[-1][1]),
                60,
                "the watcher to see the complete set",
            )
        finally:
            watcher.halt.set()
            watcher.join(60)
    assert not watcher.errors, watcher.errors
    assert done["ladder"] == "complete"
    # Once playable, it stayed playable over HLS: the retry's probe kept the partial set's master.
    assert not watcher.lost, f"playurl offered no HLS in {watcher.lost} passes"
    # At no point did a served playlist name an object that was not there.
    assert not watcher.missing, watcher.missing
    attempts = list(dict.fromkeys(prefix for prefix, _ in watcher.seen))
    assert len(attempts) >= 2, watcher.seen  # the killed attempt's set, then the new one
    assert not any(ended for prefix, ended in watcher.seen if prefix == attempts[0]), watcher.seen
    job = sql(
        local.env, "SELECT lease_token, attempts, state FROM transcode_job WHERE id = :i", i=job_id
    )[0]
    assert job[1] == 2 and job[2] == "succeeded", job
    with httpx.Client(timeout=30) as client:
        final = Tree(hls_url(api, vid)).fetch(client)
    assert not final.missing and final.ended
    assert final.prefix().startswith(f"media/{vid}/{job[0]}-") and final.prefix() == attempts[-1]
    # The killed attempt's set is gone once the new one is complete.
    assert not (local.storage / attempts[0]).exists()
    rows = sql(
        local.env,
        "SELECT storage_uri FROM video WHERE parent_id = :v AND deleted_at IS NULL",
        v=vid,
    )
    assert {r[0].split("/")[2] for r in rows} == {final.prefix().split("/")[2]}
    settle(local.env)


def test_failure_after_first_playable_ends_failed_and_not_playable(local, clip):
    api = local.api()
    vid = upload(api, clip)
    # One attempt only: the failure below is final.
    sql(local.env, "UPDATE transcode_job SET max_attempts = 1 WHERE video_id = :v", v=vid)
    with local.fleet("failing") as fleet:
        fleet.start(1)
        first_playable(api, vid)
        url = hls_url(api, vid)
        assert url is not None
        prefix = Tree(url).prefix()
        job_id = sql(local.env, "SELECT MAX(id) FROM transcode_job WHERE video_id = :v", v=vid)
        for pid in job_ffmpeg(job_id[0][0]):
            kill_group(pid)  # FFmpeg dies mid-ladder: the attempt fails, and it was the last

        def failed():
            answer = status(api, vid)
            return answer if answer["status"] == "transcode_failed" else None

        answer = wait_until(failed, 60, "the transcode to fail")
    assert answer["playable"] is False and answer["ladder"] is None, answer
    r = api.call("GET", "/video/playurl", {"vid": vid})
    assert r.status_code == 409 and r.json()["code"] == "VideoNotPlayable"
    types = [t for t, _ in event_types(local, vid)]
    assert types.index("video.playable") < types.index("video.transcode.failed"), types
    # The withdrawn set's bytes go too (the failing worker removes what nothing points at).
    wait_until(lambda: not (local.storage / prefix).exists(), 30, "the partial set removed")
    settle(local.env)
