"""Retention (the quick-download mode): a ttl on init, on imports, on tickets, or an app default;
a janitor pass then deletes the video the way POST /video/delete does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from tests import media
from tests.support.db import sql
from tests.support.server import ROOT
from tests.support.stack import Stack
from tests.support.tus import Tus, assert_completed, get_ticket
from vasset.videos.retention import MAX_TTL

TTL = 6  # long enough for every video to be created before the first one expires


class ClipSite:
    """An HTTP server on 127.0.0.1 serving one clip at /clip.mp4 (an import's source).

    Named "localhost", it passes the API's allow-list; the worker then refuses its loopback
    address (imports are SSRF-safe), so the imported video ends failed: it expires all the same.
    """

    def __init__(self, data: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/clip.mp4" else 404)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.httpd.server_address[1]}/clip.mp4"
        Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("retention")
    s = Stack(
        root,
        VASSET_LADDER="240p",
        VASSET_HLS="false",
        VASSET_IMAGE_COUNT="1",
        VASSET_IMPORT_ALLOW_HOSTS="localhost",
        # Only the passes the tests run: the worker's own janitor must not race them.
        VASSET_JANITOR_INTERVAL="3600",
    ).start()
    s.clip = media.landscape(root / "media")
    yield s
    s.stop()


def _vasset(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vasset", *args],
        env={**os.environ, **stack.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def _objects(stack: Stack, vid: int) -> list[Path]:
    """Every stored file of a video: its source and its media/ outputs."""
    store = stack.root / "storage" / "objects"
    found = [p for p in (store / "sources").glob(f"*/{vid}/**/*") if p.is_file()]
    return found + [p for p in (store / "media" / str(vid)).glob("**/*") if p.is_file()]


def _status(stack: Stack, vid: int):
    return stack.api.call("GET", "/video/status", {"vid": vid})


def _tus_upload(stack: Stack, data: bytes, **ticket_params) -> int:
    """A tus upload with a fresh ticket; returns its vid."""
    tus = Tus(stack.server.port, get_ticket(stack.api, **ticket_params))
    path = tus.new(len(data))
    info = assert_completed(stack.api, tus, path, data, tus.patch(path, 0, data))
    return int(info["vid"])


@pytest.mark.parametrize("ttl", ["0", "-1", "x", "1.5", str(MAX_TTL + 1)])
def test_bad_ttl_values_are_invalid_parameter(stack, ttl):
    calls = [
        ("/video/upload/init", {"fn": "YQ==", "fsize": 10, "psize": 10, "ttl": ttl}),
        ("/video/transcode", {"src": "http://localhost:9/a.mp4", "ttl": ttl}),
        ("/video/upload/ticket", {"ttl": ttl}),
    ]
    for path, params in calls:
        answer = stack.api.call("POST", path, params)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "InvalidParameter", (path, answer.text)
        assert answer.json()["parameter"] == "ttl", (path, answer.text)


def test_cli_refuses_a_bad_app_ttl(stack):
    bad = _vasset(stack, "apps", "ttl", stack.app["app_key"], "-5")
    assert bad.returncode == 1 and "ttl" in bad.stderr, bad.stderr
    unknown = _vasset(stack, "apps", "ttl", "ak_nosuchapp", "60")
    assert unknown.returncode == 1 and "no such app_key" in unknown.stdout


def test_expired_videos_are_deleted_like_an_api_delete(stack):
    data = stack.clip.read_bytes()
    created = time.time()
    # A ttl on init, with a transcode (renditions and snapshots must go too).
    on_init = stack.upload(stack.clip, ttl=TTL)["vid"]
    # A ttl on an import (transcode?src=).
    site = ClipSite(data)
    try:
        answer = stack.api.call("POST", "/video/transcode", {"src": site.url, "ttl": TTL})
        assert answer.status_code == 200, answer.text
        on_import = answer.json()["vid"]
        # A ttl on a ticket: the tus upload it creates gets it.
        on_ticket = _tus_upload(stack, data, ttl=TTL)
        # An app default, then cleared: the next video is kept.
        ok = _vasset(stack, "apps", "ttl", stack.app["app_key"], str(TTL))
        assert ok.returncode == 0 and ok.stdout.strip() == "ok", ok.stderr
        by_default = stack.api.upload("d.mp4", data[:200_000] + b"d", 100 << 10)["vid"]
        assert _vasset(stack, "apps", "ttl", stack.app["app_key"], "0").returncode == 0
        # Without a hash: no instant upload sharing the first video's bytes.
        kept = stack.upload(stack.clip, auto=False, with_hash=False)["vid"]
        later = stack.api.upload("l.mp4", data[:200_000] + b"l", 100 << 10, ttl=3600)["vid"]
        assert stack.wait(on_init)["status"] == "playable"
        assert stack.wait(on_import)["status"] in ("upload_failed", "transcode_failed")
    finally:
        site.close()
    expiring = [on_init, on_import, on_ticket, by_default]

    for vid in expiring:
        status = _status(stack, vid).json()
        info = stack.api.call("GET", "/video/mediainfo", {"vid": vid}).json()
        assert status["delete_at"] == info["delete_at"], vid
        assert created - 2 <= status["delete_at"] - TTL <= time.time() + 1, (vid, status)
        assert _objects(stack, vid) or vid == on_import, vid  # the import stored nothing
    assert _status(stack, kept).json()["delete_at"] is None
    kept_objects = _objects(stack, kept)
    assert kept_objects
    assert any("/media/" in str(p) for p in _objects(stack, on_init))

    while time.time() <= max(_status(stack, vid).json()["delete_at"] for vid in expiring):
        time.sleep(0.5)
    report = json.loads(_vasset(stack, "janitor").stdout)
    assert report["expired_videos"] == len(expiring), report

    for vid in expiring:
        gone = _status(stack, vid)
        assert gone.status_code == 404 and gone.json()["code"] == "VideoNotFound", gone.text
        assert _objects(stack, vid) == [], vid
        kinds = [k for (k,) in sql(stack.env, "SELECT type FROM event WHERE video_id=:v", v=vid)]
        assert "video.deleted" in kinds, (vid, kinds)
        jobs = sql(stack.env, "SELECT state FROM transcode_job WHERE video_id = :v", v=vid)
        assert not {state for (state,) in jobs} & {"queued", "running"}, jobs
    # The video without a ttl, and the one whose ttl has not passed, are untouched.
    assert _status(stack, kept).json()["status"] == "uploaded"
    assert _objects(stack, kept) == kept_objects
    assert _status(stack, later).json()["delete_at"] > time.time() + 3000
    assert json.loads(_vasset(stack, "janitor").stdout)["expired_videos"] == 0
