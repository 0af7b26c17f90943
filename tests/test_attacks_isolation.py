"""Attacks across apps and tokens, and SSRF through imports, over a real server socket."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest

from tests.support.db import sql
from tests.support.stack import Stack

VID_CALLS = [
    ("GET", "/video/status"),
    ("GET", "/video/mediainfo"),
    ("POST", "/video/delete"),
    ("POST", "/video/transcode"),
    ("POST", "/video/retranscode"),
    ("POST", "/video/retransocde"),
    ("GET", "/video/playurl"),
    ("GET", "/video/snapshot"),
]
NO_SUCH_VID = 2**62


def shape(r: httpx.Response) -> tuple:
    """What a 404 may reveal: status, code, message and the set of keys."""
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"]
    return r.status_code, body["code"], body["message"], body.get("status"), sorted(body)


@pytest.fixture(scope="module")
def owned(server, app_creds) -> dict:
    """An uploaded video and an open upload of the main app."""
    from tests.support.api import Api

    api = Api(server.url, app_creds["app_key"], app_creds["app_secret"])
    done = api.upload("mine.mp4", os.urandom(2000), 1 << 20)
    data = os.urandom(250 * 1024)
    init = api.init("open.mp4", data, 100 * 1024).json()
    return {"vid": done["vid"], "upload": init, "data": data}


@pytest.mark.parametrize(("method", "path"), VID_CALLS)
def test_another_apps_vid_looks_exactly_like_no_video(api, other_api, owned, method, path):
    theirs = other_api.call(method, path, {"vid": owned["vid"]})
    nothing = other_api.call(method, path, {"vid": NO_SUCH_VID})
    assert theirs.status_code == 404, theirs.text
    assert shape(theirs) == shape(nothing)
    assert shape(theirs)[1:4] == ("VideoNotFound", "no such video", "not_found")
    # The owner's video is untouched: not deleted, no transcode queued.
    mine = api.call("GET", "/video/status", {"vid": owned["vid"]}).json()
    assert mine["status"] == "uploaded", mine


def test_another_apps_upid_looks_exactly_like_no_upload(api, other_api, owned):
    upid, data = owned["upload"]["upload_id"], owned["data"]
    calls = [
        lambda u: other_api.call("GET", "/video/upload/resume", {"upid": u}),
        lambda u: other_api.put_part(u, 1, data[: 100 * 1024]),
        lambda u: other_api.call(
            "PUT",
            "/video/upload/upload",
            {"upid": u},
            content=data[: 100 * 1024],
            headers={"Content-Range": f"bytes 0-{100 * 1024 - 1}/{len(data)}"},
        ),
    ]
    for call in calls:
        theirs, nothing = call(upid), call("f" * 32)
        assert theirs.status_code == 404, theirs.text
        assert shape(theirs) == shape(nothing)
        assert theirs.json()["code"] == "UploadNotFound"
    resume = api.call("GET", "/video/upload/resume", {"upid": upid}).json()
    assert resume["missing"] == [1, 2, 3], resume


def test_another_apps_videos_are_never_listed(api, other_api, owned):
    listed = other_api.call("GET", "/video/list", {"limit": 100}).json()
    assert owned["vid"] not in [v["vid"] for v in listed["videos"]]
    mine = api.call("GET", "/video/list", {"limit": 1}).json()
    if mine["next_cursor"]:  # our cursor reveals nothing of ours to them
        page = other_api.call("GET", "/video/list", {"cursor": mine["next_cursor"]}).json()
        assert owned["vid"] not in [v["vid"] for v in page.get("videos", [])]


def test_an_upload_token_opens_only_its_own_upload(api):
    data = os.urandom(150 * 1024)
    a = api.init("a.mp4", data, 100 * 1024).json()
    b = api.init("b.mp4", data, 100 * 1024).json()
    base = api.base_url + "/video/upload/"
    stolen = {"upid": b["upload_id"], "token": a["upload_token"]}
    r = httpx.put(base + "upload", params={**stolen, "pseq": 1}, content=data[: 100 * 1024])
    assert r.status_code == 401 and r.json()["code"] == "InvalidUploadToken", r.text
    r = httpx.get(base + "resume", params=stolen)
    assert r.status_code == 401 and r.json()["code"] == "InvalidUploadToken", r.text
    r = httpx.get(base + "resume", params={"upid": b["upload_id"], "token": "x" * 43})
    assert r.status_code == 401 and r.json()["code"] == "InvalidUploadToken", r.text
    assert api.call("GET", "/video/upload/resume", {"upid": b["upload_id"]}).json()["missing"] == [
        1,
        2,
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [*VID_CALLS, ("POST", "/video/upload/init"), ("GET", "/video/upload/limits"),
     ("GET", "/video/list")],
)  # fmt: skip
def test_an_upload_token_authorizes_nothing_else(api, method, path):
    data = os.urandom(1000)
    init = api.init("t.mp4", data, 1 << 20).json()
    params = {"vid": init["vid"], "upid": init["upload_id"], "token": init["upload_token"],
              "fn": "eC5tcDQ=", "fsize": 10, "psize": 1 << 20}  # fmt: skip
    r = httpx.request(method, api.base_url + path, params=params)
    assert r.status_code in (400, 401), r.text
    assert r.json()["code"] in ("MissingParameter", "InvalidUploadToken"), r.text
    status = api.call("GET", "/video/status", {"vid": init["vid"]}).json()
    assert status["status"] == "uploading", status


def test_a_token_with_a_forged_signature_is_a_signed_call(api):
    data = os.urandom(1000)
    init = api.init("f.mp4", data, 1 << 20).json()
    params = {"upid": init["upload_id"], "token": init["upload_token"], "pseq": 1,
              "app_key": api.app_key, "timestamp": int(time.time()),
              "random": os.urandom(10).hex(), "signature": "0" * 64}  # fmt: skip
    r = httpx.put(api.base_url + "/video/upload/upload", params=params, content=data)
    assert r.status_code == 401 and r.json()["code"] == "SignatureDoesNotMatch", r.text
    missing = api.call("GET", "/video/upload/resume", {"upid": init["upload_id"]}).json()
    assert missing["missing"] == [1]


# ---- SSRF: import sources


@pytest.mark.parametrize(
    "src",
    [
        "http://127.0.0.1/x.mp4",
        "http://127.1/x.mp4",
        "http://[::1]/x.mp4",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://127.0.0.1/x.mp4",
        "dict://127.0.0.1:11211/stat",
        "oss://another-bucket/key",
        "//127.0.0.1/x.mp4",
        "http://user:pw@127.0.0.1/x.mp4",
    ],
)
def test_import_sources_off_the_allow_list_are_refused_at_once(api, src):
    r = api.call("POST", "/video/transcode", {"src": src})
    assert r.status_code == 400 and r.json()["code"] == "InvalidSource", r.text


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []  # every path any import fetched (must stay empty)

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"\0\0\0\0")

    def log_message(self, *args) -> None:
        pass


class _Recorder6(HTTPServer):
    address_family = socket.AF_INET6


LOOPBACK_FORMS = ["127.1", "0x7f000001", "2130706433", "0177.0.0.1", "[::1]",
                  "[::ffff:127.0.0.1]", "localhost", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def ssrf_imports(tmp_path_factory):
    """Imports from loopback address forms that are ON the allow-list, run by a real worker."""
    servers = [HTTPServer(("127.0.0.1", 0), _Recorder)]
    port = servers[0].server_address[1]
    with contextlib.suppress(OSError):
        servers.append(_Recorder6(("::1", port), _Recorder))
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    allow = ",".join(h.strip("[]") for h in LOOPBACK_FORMS)
    stack = Stack(tmp_path_factory.mktemp("ssrf"), VASSET_IMPORT_ALLOW_HOSTS=allow).start()
    try:
        answers = {
            host: stack.api.call("POST", "/video/transcode", {"src": f"http://{host}:{port}/a.mp4"})
            for host in LOOPBACK_FORMS
        }
        vids = [r.json()["vid"] for r in answers.values() if r.status_code == 200]
        deadline = time.monotonic() + 60
        jobs: list[tuple] = []
        while time.monotonic() < deadline:
            jobs = sql(stack.env, "SELECT video_id, state, error FROM transcode_job")
            if len(jobs) == len(vids) and all(j[1] in ("failed", "done") for j in jobs):
                break
            time.sleep(0.3)
        statuses = {v: stack.api.call("GET", "/video/status", {"vid": v}).json() for v in vids}
        yield {"answers": answers, "jobs": jobs, "statuses": statuses, "hits": _Recorder.hits}
    finally:
        stack.stop()
        for srv in servers:
            srv.shutdown()


def test_loopback_address_forms_are_never_fetched(ssrf_imports):
    for host, r in ssrf_imports["answers"].items():
        assert r.status_code in (200, 400), (host, r.text)
        if r.status_code == 400:
            assert r.json()["code"] == "InvalidSource", (host, r.text)
    jobs = ssrf_imports["jobs"]
    queued = sum(r.status_code == 200 for r in ssrf_imports["answers"].values())
    assert len(jobs) == queued
    for _, state, err in jobs:
        assert state == "failed" and err.startswith("InvalidSource:"), (state, err)
    assert ssrf_imports["hits"] == []


def test_a_refused_import_reports_the_failure_on_its_video(ssrf_imports):
    if not ssrf_imports["statuses"]:
        pytest.skip("every address form was refused at request time: no job to fail")
    for vid, status in ssrf_imports["statuses"].items():
        assert status["status"] in ("upload_failed", "transcode_failed"), (vid, status)
        # The client sees why, not a video stuck at `uploading` forever.
        assert (status["error"] or "").startswith("InvalidSource"), (vid, status)


# ---- console: CSRF, cookie forgery, stored names


CONSOLE_KEY = "console-" + os.urandom(9).hex()
EVIL = {"Origin": "https://evil.example.test"}


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A private API (no worker) whose console acts for its own app; a logged-in client."""
    import json

    stack = Stack(tmp_path_factory.mktemp("console-attacks"), workers=0)
    stack._run("db", "upgrade")
    app = json.loads(stack._run("apps", "create", "console", "--json"))
    stack.env.update(VASSET_CONSOLE_KEY=CONSOLE_KEY, VASSET_CONSOLE_APP_KEY=app["app_key"])
    try:
        stack.start()
        client = httpx.Client(base_url=stack.server.url, timeout=30)
        assert client.post("/console/login", json={"key": CONSOLE_KEY}).status_code == 200
        yield stack, client
        client.close()
    finally:
        stack.stop()


def test_cross_site_simple_posts_are_refused_even_with_the_cookie(console):
    stack, client = console
    before = client.get("/console/api/videos").json()["videos"]
    body = b'{"name": "csrf.mp4", "size": 10, "part_size": 102400}'
    # What a cross-site <form> or no-preflight fetch can send: never application/json.
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""):
        headers = {**EVIL, "Content-Type": ctype} if ctype else EVIL
        r = client.post("/console/api/uploads", content=body, headers=headers)
        assert r.status_code == 400, (ctype, r.text)
        assert "access-control-allow-credentials" not in r.headers
    assert client.get("/console/api/videos").json()["videos"] == before
    pre = httpx.options(stack.server.url + "/console/api/uploads",
                        headers={**EVIL, "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "content-type"})  # fmt: skip
    assert pre.headers.get("access-control-allow-origin") in (None, "*")
    assert pre.headers.get("access-control-allow-credentials") != "true"


@pytest.mark.parametrize(
    "cookie",
    ["", "x", "1.2.3", "0" * 300, "ZZZZ.ZZZZ", "%00", "../../", "9" * 40 + ".abc"],
)
def test_forged_console_cookies_are_not_sessions(console, cookie):
    stack, client = console
    real = client.cookies["vasset_console"]
    for value in (cookie, real + "0", real[:-1]):
        r = httpx.get(stack.server.url + "/console/api/videos", cookies={"vasset_console": value})
        assert r.status_code == 401 and r.json()["code"] == "InvalidConsoleKey", (value, r.text)


def test_hostile_file_names_come_back_as_json_data(console):
    stack, client = console
    name = '<img src=x onerror="alert(1)"><script>alert(2)<svg onload=alert(3)>.mp4'  # no '/'
    r = client.post("/console/api/uploads", json={"name": name, "size": 10, "part_size": 102400})
    assert r.status_code == 200, r.text
    video = client.get(f"/console/api/videos/{r.json()['vid']}")
    assert video.headers["content-type"].startswith("application/json")
    assert video.json()["media"]["source_name"] == name  # data, to be shown as text
    page = httpx.get(stack.server.url + "/console")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[-1]
    script = httpx.get(stack.server.url + "/console/static/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink  # names and messages reach the page as text only
