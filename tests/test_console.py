"""The console: its login and routes over HTTP, and the whole page in headless Chromium."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests import media
from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.db import sql
from tests.support.server import ROOT
from tests.support.stack import Stack

JS_DIR = ROOT / "clients" / "js"
E2E_SCRIPT = ROOT / "tests" / "js" / "console_e2e.mjs"
ARTIFACTS = ROOT / "test-artifacts"
CONSOLE_KEY = "console-" + secrets.token_urlsafe(12)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


NODE = shutil.which("node")
CHROMIUM = _chromium()


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory):
    """A private stack whose console is enabled and acts for its own 'console' app."""
    root = tmp_path_factory.mktemp("console")
    stack = Stack(root)
    stack._run("db", "upgrade")
    app = json.loads(stack._run("apps", "create", "console", "--json"))
    stack.env["VASSET_CONSOLE_KEY"] = CONSOLE_KEY
    stack.env["VASSET_CONSOLE_APP_KEY"] = app["app_key"]
    try:
        stack.start()
        stack.console_app = app
        yield stack
    finally:
        stack.stop()


def _login(base: str, key: str = CONSOLE_KEY) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    r = client.post("/console/login", json={"key": key})
    assert r.status_code == 200, r.text
    return client


# The console over HTTP


def test_console_disabled_without_a_key(server):
    """Without VASSET_CONSOLE_KEY the page is a 404 that says how to enable it."""
    r = httpx.get(server.url + "/console")
    assert r.status_code == 404
    assert "VASSET_CONSOLE_KEY" in r.text and "disabled" in r.text
    for method, path in [
        ("GET", "/console/api/session"),
        ("POST", "/console/login"),
        ("GET", "/console/api/videos"),
        ("GET", "/console/static/app.js"),
    ]:
        r = httpx.request(method, server.url + path, json={"key": ""})
        assert r.status_code == 404, (path, r.text)


def test_login_sets_a_strict_httponly_cookie(console_stack):
    base = console_stack.server.url
    r = httpx.get(base + "/console/api/session")
    assert r.json() == {"enabled": True, "logged_in": False}
    assert httpx.get(base + "/console/api/videos").json()["code"] == "InvalidConsoleKey"

    r = httpx.post(base + "/console/login", json={"key": "wrong"})
    assert r.status_code == 401 and r.json()["code"] == "InvalidConsoleKey"
    assert "set-cookie" not in r.headers

    r = httpx.post(base + "/console/login", json={"key": CONSOLE_KEY})
    assert r.status_code == 200 and r.json()["app"] == "console"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("vasset_console=")
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].split("=")[1].strip().lower() == "strict"
    assert attributes["path"].split("=")[1].strip() == "/console"

    client = _login(base)
    session = client.get("/console/api/session").json()
    assert session["logged_in"] is True and session["app"] == "console"
    assert client.get("/console/api/videos").status_code == 200

    # A tampered or foreign cookie is not a session.
    value = client.cookies["vasset_console"]
    forged = value[:-4] + ("0000" if not value.endswith("0000") else "1111")
    r = httpx.get(base + "/console/api/videos", cookies={"vasset_console": forged})
    assert r.status_code == 401
    # Logging out drops the cookie.
    r = client.post("/console/logout", json={})
    assert r.status_code == 200 and "vasset_console=" in r.headers["set-cookie"]


def test_failed_logins_are_throttled(console_stack):
    import redis

    base = console_stack.server.url
    counter = f"{console_stack.env['VASSET_REDIS_PREFIX']}console:login:127.0.0.1"
    client = redis.Redis.from_url(console_stack.env["VASSET_REDIS_URL"])
    try:
        for _ in range(10):
            r = httpx.post(base + "/console/login", json={"key": "guess"})
            assert r.status_code == 401
        r = httpx.post(base + "/console/login", json={"key": CONSOLE_KEY})
        assert r.status_code == 429 and r.json()["code"] == "Throttled"
        assert "retry-after" in r.headers
    finally:
        client.delete(counter)
        client.close()
    assert httpx.post(base + "/console/login", json={"key": CONSOLE_KEY}).status_code == 200


def test_posts_must_be_json(console_stack):
    base = console_stack.server.url
    r = httpx.post(base + "/console/login", data={"key": CONSOLE_KEY})
    assert r.status_code == 400
    client = _login(base)
    r = client.post("/console/api/uploads", data={"name": "a.mp4", "size": "5"})
    assert r.status_code == 400


def test_upload_via_console_init_and_token(console_stack):
    """The console's init answers with a token; parts go up with it, no signature."""
    client = _login(console_stack.server.url)
    data = os.urandom(250 * 1024)
    r = client.post(
        "/console/api/uploads", json={"name": "clip.mp4", "size": len(data), "part_size": 102400}
    )
    assert r.status_code == 200, r.text
    init = r.json()
    assert init["part_count"] == 3 and init["upload_token"] and init["vid"] > 0
    assert "app_secret" not in r.text and console_stack.console_app["app_secret"] not in r.text
    base = console_stack.server.url
    for pseq in range(1, 4):
        body = data[(pseq - 1) * 102400 : pseq * 102400]
        r = httpx.put(
            f"{base}/video/upload/upload",
            params={"upid": init["upload_id"], "pseq": pseq, "token": init["upload_token"]},
            content=body,
        )
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "uploaded"
    video = client.get(f"/console/api/videos/{init['vid']}").json()
    assert video["vid"] == init["vid"] and video["media"]["source_name"] == "clip.mp4"
    listed = client.get("/console/api/videos").json()["videos"]
    assert init["vid"] in [v["vid"] for v in listed]
    # Videos of another app are not reachable through the console.
    other = console_stack.upload(media.text_file(console_stack.root), auto=False)
    r = client.get(f"/console/api/videos/{other['vid']}")
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    # A default part size is chosen when the page names none.
    r = client.post("/console/api/uploads", json={"name": "big.mp4", "size": 9 * 1024 * 1024})
    assert r.json()["part_size"] >= 102400 and r.json()["part_count"] >= 1


def _console_upload(client: httpx.Client, path: Path) -> int:
    """Upload a file through the console's init and its upload token (auto-transcode); the vid."""
    data = path.read_bytes()
    init = client.post(
        "/console/api/uploads", json={"name": path.name, "size": len(data), "part_size": len(data)}
    ).json()
    params = {"upid": init["upload_id"], "pseq": 1, "token": init["upload_token"]}
    r = httpx.put(f"{client.base_url}/video/upload/upload", params=params, content=data)
    assert r.status_code == 200, r.text
    return init["vid"]


def _wait_status(client: httpx.Client, vid: int, until: set[str], timeout: float = 120) -> dict:
    """Poll the console's status route until the video is in one of until."""
    deadline = time.monotonic() + timeout
    info: dict = {}
    while time.monotonic() < deadline:
        info = client.get(f"/console/api/videos/{vid}").json()
        if info.get("status") in until:
            return info
        time.sleep(0.2)
    raise AssertionError(f"video {vid} stuck at {info}")


def _published_prefix(client: httpx.Client, vid: int) -> str:
    """The attempt folder (media/VID/ATTEMPT/) of the video's MP4 play URL."""
    play = client.get(f"/console/api/videos/{vid}/play").json()
    url = next(u["url"] for u in play["play_urls"] if u["format"] == "mp4")
    found = re.search(rf"media/{vid}/[^/]+/", url)
    assert found, url
    return found.group(0)


def test_console_manage_routes_need_the_session(console_stack):
    """Every new console route answers 401 InvalidConsoleKey without the cookie."""
    base = console_stack.server.url
    for method, path in [
        ("GET", "/console/api/videos?cursor=x"),
        ("POST", "/console/api/videos/1/delete"),
        ("POST", "/console/api/videos/1/retranscode"),
        ("GET", "/console/api/videos/1/captions"),
        ("GET", "/console/api/videos/1/storyboard"),
        ("GET", "/console/api/templates"),
    ]:
        r = httpx.request(method, base + path, json={})
        assert r.status_code == 401 and r.json()["code"] == "InvalidConsoleKey", (path, r.text)


def test_console_pages_through_videos(console_stack):
    """The list's cursor walks every video once, newest first; status filters; bad input 400."""
    client = _login(console_stack.server.url)
    mine = []
    for n in range(5):
        path = console_stack.root / f"page-{n}.txt"
        path.write_bytes(os.urandom(2048))
        mine.append(_console_upload(client, path))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = client.get("/console/api/videos", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert 1 <= len(body["videos"]) <= 2
        assert all({"vid", "status", "progress", "playable"} <= set(v) for v in body["videos"])
        seen += [v["vid"] for v in body["videos"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages >= 3
    assert seen == sorted(set(seen), reverse=True)
    assert set(mine) <= set(seen)
    # The filter: every listed video is in the asked status.
    _wait_status(client, mine[0], {"transcode_failed"})
    failed = client.get("/console/api/videos", params={"status": "transcode_failed"}).json()
    assert failed["videos"] and {v["status"] for v in failed["videos"]} == {"transcode_failed"}
    for params, name in [({"cursor": "bogus"}, "cursor"), ({"status": "nope"}, "status")]:
        r = client.get("/console/api/videos", params=params)
        assert r.status_code == 400 and r.json()["code"] == "InvalidParameter", r.text
        assert r.json()["parameter"] == name
    assert client.get("/console/api/videos", params={"limit": 0}).status_code == 400


def test_console_delete_and_retranscode(console_stack, tmp_path_factory):
    """Retranscode a playable video (new renditions replace the old); delete it; bad input."""
    client = _login(console_stack.server.url)
    vid = _console_upload(client, media.landscape(media.shared_dir(tmp_path_factory)))
    _wait_status(client, vid, {"playable"})
    before = _published_prefix(client, vid)
    # POSTs are JSON only, and the body is checked.
    r = client.post(f"/console/api/videos/{vid}/retranscode", data={"definitions": "360p"})
    assert r.status_code == 400
    r = client.post(f"/console/api/videos/{vid}/retranscode", json={"definitions": "9000p"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"
    r = client.post(f"/console/api/videos/{vid}/retranscode", json={"what": 1})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"
    # Templates: the app's list, an unknown one refused (nothing queued), a known one applied.
    app = console_stack.console_app
    signed = Api(console_stack.server.url, app["app_key"], app["app_secret"])
    r = signed.call("POST", "/video/templates", {"name": "low", "definitions": "360p"})
    assert r.status_code == 200, r.text
    names = [t["name"] for t in client.get("/console/api/templates").json()["templates"]]
    assert names == ["low"]
    r = client.post(f"/console/api/videos/{vid}/retranscode", json={"template": "nope"})
    assert r.status_code == 400 and r.json()["code"] == "UnknownTemplate", r.text
    assert client.get(f"/console/api/videos/{vid}").json()["status"] == "playable"
    r = client.post(f"/console/api/videos/{vid}/retranscode", json={"template": "low"})
    assert r.status_code == 200, r.text
    assert r.json() == {"vid": vid, "status": "transcode_queued"}
    rows = sql(
        console_stack.env,
        "SELECT kind, params FROM transcode_job WHERE video_id = :v ORDER BY id DESC LIMIT 1",
        v=vid,
    )
    assert rows[0][0] == "retranscode"
    assert json.loads(rows[0][1]) == {"definitions": "360p", "template": "low"}
    # Done when the status is playable again with renditions of a new attempt.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = client.get(f"/console/api/videos/{vid}").json()
        assert info["status"] != "transcode_failed", info
        if info["status"] == "playable" and _published_prefix(client, vid) != before:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the retranscode did not replace the renditions: {info}")
    assert client.get(f"/console/api/videos/{vid}/play").status_code == 200
    # Another app's video cannot be touched through the console.
    other = console_stack.upload(media.text_file(console_stack.root), auto=False)
    for action in ("delete", "retranscode"):
        r = client.post(f"/console/api/videos/{other['vid']}/{action}", json={})
        assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    r = client.post(f"/console/api/videos/{vid}/delete", data={})
    assert r.status_code == 400
    r = client.post(f"/console/api/videos/{vid}/delete", json={})
    assert r.status_code == 200 and r.json() == {"vid": vid, "deleted": True}
    assert client.get(f"/console/api/videos/{vid}").json()["code"] == "VideoNotFound"
    assert client.get(f"/console/api/videos/{vid}/play").status_code == 404
    listed = [v["vid"] for v in client.get("/console/api/videos?limit=100").json()["videos"]]
    assert vid not in listed
    r = client.post(f"/console/api/videos/{vid}/delete", json={})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"


def _frames(response: httpx.Response, until: str) -> list[dict]:
    """Frames of an open event stream, up to and including the first of type `until`."""
    frames: list[dict] = []
    current: dict = {}
    for line in response.iter_lines():
        if not line:
            if "data" in current:
                frames.append(current)
                if current.get("event") == until:
                    return frames
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return frames


def test_console_events_stream(console_stack):
    """/console/api/events: the console app's events over its cookie session, one video's."""
    base = console_stack.server.url
    r = httpx.get(base + "/console/api/events")
    assert r.status_code == 401 and r.json()["code"] == "InvalidConsoleKey"
    client = _login(base)
    data = os.urandom(120 * 1024)
    init = client.post(
        "/console/api/uploads", json={"name": "live.mp4", "size": len(data), "part_size": len(data)}
    ).json()
    params = {"upid": init["upload_id"], "pseq": 1, "token": init["upload_token"]}
    assert httpx.put(f"{base}/video/upload/upload", params=params, content=data).status_code == 200
    url = f"/console/api/events?vid={init['vid']}&since=0"
    with client.stream("GET", url, timeout=20) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _frames(stream, "upload.completed")
    assert [f["event"] for f in frames] == ["upload.created", "upload.completed"]
    bodies = [json.loads(f["data"]) for f in frames]
    assert [b["data"]["seq"] for b in bodies] == [1, 2]
    assert {b["data"]["vid"] for b in bodies} == {init["vid"]}
    # Another app's video is not reachable through the console's stream.
    other = console_stack.upload(media.text_file(console_stack.root), auto=False)
    r = client.get(f"/console/api/events?vid={other['vid']}")
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"


def test_assets_are_a_fixed_list(console_stack):
    base = console_stack.server.url
    page = httpx.get(base + "/console")
    assert page.status_code == 200
    assert httpx.get(base + "/console/").text == page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert console_stack.console_app["app_secret"] not in page.text
    sdk = httpx.get(base + "/console/static/vasset.js")
    assert sdk.status_code == 200 and sdk.headers["content-type"].startswith("text/javascript")
    assert sdk.content == (JS_DIR / "vasset.js").read_bytes()
    again = httpx.get(
        base + "/console/static/vasset.js", headers={"If-None-Match": sdk.headers["etag"]}
    )
    assert again.status_code == 304
    for name in ("app.js", "list.js", "media.js", "style.css"):
        assert httpx.get(f"{base}/console/static/{name}").status_code == 200
    for name in ("index.html", "..%2F..%2Fsettings.py", "package.json", "nope.js"):
        assert httpx.get(f"{base}/console/static/{name}").status_code == 404


# The page in headless Chromium


def _locked_npm_install(directory: Path, marker: Path) -> None:
    """npm install in directory once, even with several xdist workers asking at the same time."""
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"{marker} is missing and npm is not installed (run ./dev test)")
    lock_path = directory / ".npm-install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not marker.exists():
                subprocess.run(
                    [npm, "install", "--no-audit", "--no-fund"],
                    cwd=directory,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        lock_path.unlink()


def _noisy_clip(directory: Path) -> Path:
    """320x180, 4 s with noise: about 3.5 MB, so 100 KiB parts make a slow-enough upload."""
    target = directory / "console-clip.mp4"
    if target.exists():
        return target
    tmp = directory / f".tmp-{os.getpid()}-console-clip.mp4"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", "4", "-vf", "noise=alls=40:allf=t",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-crf", "20",
            "-c:a", "aac", "-b:a", "64k", "-shortest", str(tmp),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    os.replace(tmp, target)
    return target


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (./dev test installs it)")
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev test installs it)")
def test_console_in_chromium(console_stack, tmp_path_factory, tmp_path):
    """Log in, upload, reload mid-upload, resume, play (hls.js), snapshots, downloads."""
    _locked_npm_install(JS_DIR, JS_DIR / "node_modules" / "playwright-core" / "package.json")
    clip = _noisy_clip(media.shared_dir(tmp_path_factory))
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "console.png"
    env = {
        **os.environ,
        "CONSOLE_URL": console_stack.server.url,
        "CONSOLE_KEY": CONSOLE_KEY,
        "CLIP": str(clip),
        "SCREENSHOT": str(tmp_path / "console.png"),
        "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        "CHROMIUM": CHROMIUM,
        "PLAYWRIGHT_FROM": str(JS_DIR / "package.json"),
        "EXPECT_HLS": "1",
        "PART_KIB": "100",
        "PART_DELAY_MS": "150",
        "NODE_OPTIONS": "",
    }
    proc = subprocess.run(
        [NODE, str(E2E_SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    steps = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"step"')]
    assert [s["step"] for s in steps][-1] == "done", output[-4000:]
    by_step = {s["step"]: s for s in steps}
    assert by_step["reload_mid_upload"]["parts_before"] < by_step["reload_mid_upload"]["part_count"]
    assert by_step["playing"]["source"] == "hls.js"
    assert by_step["snapshots"]["count"] >= 1
    assert "mp4_fallback" in by_step
    shutil.copyfile(tmp_path / "console.png", screenshot)
    assert screenshot.stat().st_size > 10_000
    status = console_stack.api.call("GET", "/video/status", {"vid": by_step["done"]["vid"]})
    # The console's uploads belong to the console app, not to the stack's own app.
    assert status.status_code == 404


CAPTIONS_VTT = (
    b"WEBVTT\n\n00:00.000 --> 00:02.500\nHello console\n\n00:02.500 --> 00:05.000\nSecond cue\n"
)


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (./dev test installs it)")
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (./dev test installs it)")
def test_console_manages_videos_in_chromium(console_stack, tmp_path_factory, tmp_path):
    """Paging, storyboard tile on hover, captions, retranscode with a per-cent label, delete."""
    _locked_npm_install(JS_DIR, JS_DIR / "node_modules" / "playwright-core" / "package.json")
    client = _login(console_stack.server.url)
    app = console_stack.console_app
    signed = Api(console_stack.server.url, app["app_key"], app["app_secret"])
    vid = _console_upload(client, media.landscape(media.shared_dir(tmp_path_factory)))
    for n in range(16):  # more than the page's 15
        path = tmp_path / f"filler-{n}.txt"
        path.write_bytes(os.urandom(1024))
        _console_upload(client, path)
    _wait_status(client, vid, {"playable"})
    r = signed.call(
        "PUT",
        "/video/captions",
        {"vid": vid, "lang": "en", "label": "English"},
        content=CAPTIONS_VTT,
    )
    assert r.status_code == 200, r.text
    r = signed.call("POST", "/video/templates", {"name": "small", "definitions": "360p"})
    assert r.status_code == 200, r.text
    listed = 0
    cursor = None
    while True:
        page = client.get("/console/api/videos", params={"limit": 100, "cursor": cursor}).json()
        listed += len(page["videos"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    board = signed.call("GET", "/video/storyboard", {"vid": vid})
    env = {
        **os.environ,
        "CONSOLE_URL": console_stack.server.url,
        "CONSOLE_KEY": CONSOLE_KEY,
        "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        "CHROMIUM": CHROMIUM,
        "PLAYWRIGHT_FROM": str(JS_DIR / "package.json"),
        "VID": str(vid),
        "LISTED": str(listed),
        "EXPECT_STORYBOARD": "1" if board.status_code == 200 else "0",
        "CAPTION_LANG": "en",
        "TEMPLATE": "small",
        "NODE_OPTIONS": "",
    }
    proc = subprocess.run(
        [NODE, str(ROOT / "tests" / "js" / "console_manage_e2e.mjs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    steps = {
        s["step"]: s
        for s in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    }
    assert list(steps)[-1] == "done", output[-4000:]
    assert steps["paged"]["listed"] == listed and steps["paged"]["clicks"] >= 1
    assert steps["captions"]["tracks"] == 1
    if board.status_code == 200:
        assert len(set(steps["storyboard"]["tiles"])) == 2
    assert "100 %" in steps["retranscoded"]["labels"]
    assert signed.call("GET", "/video/status", {"vid": vid}).status_code == 404
    rows = sql(
        console_stack.env,
        "SELECT params FROM transcode_job WHERE video_id = :v AND kind = 'retranscode'",
        v=vid,
    )
    assert [json.loads(r[0]).get("template") for r in rows] == ["small"]


@pytest.fixture
def oss_console_stack(tmp_path, oss_server):
    """A console stack whose storage is the OSS-protocol test server."""
    root = tmp_path / "oss-console"
    root.mkdir()
    stack = Stack(
        root,
        VASSET_STORAGE_URL=f"oss://{OSS_BUCKET}/vasset",
        VASSET_OSS_ENDPOINT=oss_server.endpoint,
        VASSET_OSS_BUCKET=OSS_BUCKET,
        VASSET_OSS_ACCESS_KEY_ID=OSS_ACCESS_KEY_ID,
        VASSET_OSS_ACCESS_KEY_SECRET=OSS_ACCESS_KEY_SECRET,
    )
    stack._run("db", "upgrade")
    app = json.loads(stack._run("apps", "create", "console", "--json"))
    stack.env["VASSET_CONSOLE_KEY"] = CONSOLE_KEY
    stack.env["VASSET_CONSOLE_APP_KEY"] = app["app_key"]
    try:
        stack.start()
        stack.console_app = app
        yield stack
    finally:
        stack.stop()


def test_console_manages_videos_on_oss(oss_console_stack, oss_server, tmp_path_factory):
    """On OSS: captions and storyboard URLs fetch, retranscode republishes, delete removes."""
    stack = oss_console_stack
    client = _login(stack.server.url)
    app = stack.console_app
    signed = Api(stack.server.url, app["app_key"], app["app_secret"])
    vid = _console_upload(client, media.landscape(media.shared_dir(tmp_path_factory)))
    _wait_status(client, vid, {"playable"})
    r = signed.call(
        "PUT",
        "/video/captions",
        {"vid": vid, "lang": "en", "label": "English"},
        content=CAPTIONS_VTT,
    )
    assert r.status_code == 200, r.text
    tracks = client.get(f"/console/api/videos/{vid}/captions").json()["captions"]
    assert [(t["lang"], t["label"]) for t in tracks] == [("en", "English")]
    assert "Hello console" in httpx.get(tracks[0]["url"]).text
    board = client.get(f"/console/api/videos/{vid}/storyboard").json()
    cues = [x for x in httpx.get(board["vtt_url"]).text.splitlines() if "#xywh=" in x]
    assert cues and board["sheets"]
    # The page resolves cue URIs against the VTT's URL, as a player does.
    sheet = httpx.get(urljoin(board["vtt_url"], cues[0].split("#")[0]))
    assert sheet.status_code == 200 and sheet.content[:2] == b"\xff\xd8"
    assert httpx.get(board["sheets"][0]["url"]).content[:2] == b"\xff\xd8"
    before = {k for k in oss_server.object_keys() if k.startswith(f"vasset/media/{vid}/")}
    assert before
    r = client.post(f"/console/api/videos/{vid}/retranscode", json={})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = client.get(f"/console/api/videos/{vid}").json()
        assert info["status"] != "transcode_failed", info
        now = {k for k in oss_server.object_keys() if k.startswith(f"vasset/media/{vid}/")}
        if info["status"] == "playable" and not (before & now) and now:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the retranscode did not replace the objects: {info}")
    play = client.get(f"/console/api/videos/{vid}/play").json()
    mp4 = next(u["url"] for u in play["play_urls"] if u["format"] == "mp4")
    assert mp4.startswith(oss_server.endpoint) and httpx.get(mp4).content[4:8] == b"ftyp"
    assert [c["lang"] for c in play["captions"]] == ["en"]  # captions survive a retranscode
    r = client.post(f"/console/api/videos/{vid}/delete", json={})
    assert r.status_code == 200 and r.json() == {"vid": vid, "deleted": True}
    assert not [k for k in oss_server.object_keys() if k.startswith(f"vasset/media/{vid}/")]
    assert client.get(f"/console/api/videos/{vid}/captions").status_code == 404
