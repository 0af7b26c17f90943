"""Third-party tus clients against vasset's /files/: tus-js-client, tuspy and Uppy in Chromium."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

from tests import media
from tests.support.api import Api
from tests.support.server import ROOT
from tests.support.stack import Stack

JS = ROOT / "tests" / "js"
NODE_UPLOAD = JS / "tus" / "tus_node.mjs"
UPPY_E2E = JS / "tus" / "uppy_e2e.mjs"
ARTIFACTS = ROOT / "test-artifacts"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OCTETS = "application/offset+octet-stream"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/js/node_modules as pinned by its package-lock.json (`./dev test` runs npm ci)."""
    marker, npm = JS / "node_modules" / ".package-lock.json", shutil.which("npm")
    if NODE is None or (npm is None and not marker.exists()):
        pytest.fail("node or npm is not installed (./dev test installs them)")
    # Both xdist workers may get here at once: one installs, the other waits for it.
    with open(Path(tempfile.gettempdir()) / "vasset-tests-js-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            command = [npm or "npm", "ci", "--no-audit", "--no-fund"]
            subprocess.run(command, cwd=JS, check=True, capture_output=True, timeout=300)
    return JS / "node_modules"


def _ticket(api: Api, **params: Any) -> str:
    r = api.call("POST", "/video/upload/ticket", params)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["ticket"].startswith("vt_") and answer["endpoint"] == "/files/", answer
    return answer["ticket"]


def _job(server, api: Api, tmp_path: Path, size: int, **ticket: Any) -> tuple[dict, str]:
    """A random file of size bytes and a ticket: (tus_node.mjs's config, the file's MD5)."""
    data = os.urandom(size)
    path = tmp_path / f"{size}.bin"
    path.write_bytes(data)
    cfg = {"endpoint": f"{server.url}/files/", "ticket": _ticket(api, **ticket), "file": str(path)}
    return cfg, hashlib.md5(data).hexdigest()


def _auth(ticket: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {ticket}"}


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"event"')]


def _run_js(script: Path, cfg: dict, timeout: float = 120) -> str:
    """Run one of the Node drivers to its end (it must exit 0); its stdout."""
    command = [NODE or "node", str(script), json.dumps(cfg)]
    env = {**os.environ, "NODE_OPTIONS": ""}
    proc = subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return proc.stdout


def _node(cfg: dict) -> list[dict]:
    """Run tus_node.mjs; its events."""
    return _events(_run_js(NODE_UPLOAD, cfg))


def _of(events: list[dict], kind: str, method: str | None = None) -> list[dict]:
    return [e for e in events if e["event"] == kind and (method is None or e["method"] == method)]


def _vid(events: list[dict]) -> int:
    """The vid the creating POST answered with."""
    return int(_of(events, "response", "POST")[-1]["headers"]["Vasset-Vid"])


def _offsets(events: list[dict]) -> list[int]:
    """Upload-Offset of every PATCH answer."""
    return [int(r["headers"]["Upload-Offset"]) for r in _of(events, "response", "PATCH")]


# Where a video may be once its upload completed (with auto=1 the worker moves it on at once).
AFTER_UPLOAD = {"uploaded", "transcode_queued", "transcoding", "transcode_succeeded", "playable"}


def _check_uploaded(
    api: Api, url: str, ticket: str, vid: int, size: int, md5: str, auto: bool = False
) -> dict:
    """The upload is complete with the file's bytes: GET on the upload, status and mediainfo."""
    info = httpx.get(url, headers=_auth(ticket), timeout=30)
    assert info.status_code == 200, info.text
    body = info.json()
    statuses = AFTER_UPLOAD if auto else {"uploaded"}
    assert body["vid"] == vid and body["status"] in statuses, body
    assert body["offset"] == body["length"] == body["size"] == size, body
    assert body["md5"] == md5, body
    status = api.call("GET", "/video/status", {"vid": vid}).json()
    assert status["status"] in statuses, status
    mediainfo = api.call("GET", "/video/mediainfo", {"vid": vid}).json()
    assert mediainfo["md5"] == md5 and mediainfo["file_size"] == size, mediainfo
    return mediainfo


# tus-js-client 4.3.1 in Node


def test_js_plain_upload(node_modules, server, api, tmp_path):
    """One PATCH with the whole file: uploaded, vid and MD5 in the headers, metadata kept."""
    size = (2 << 20) + 123
    cfg, md5 = _job(server, api, tmp_path, size)
    cfg["metadata"] = {"filename": "plain clip.mp4", "purpose": "tus-js-client"}
    events = _node(cfg)
    assert [r["status"] for r in _of(events, "response", "POST")] == [201]
    patches = _of(events, "response", "PATCH")
    assert [p["status"] for p in patches] == [204]
    final, vid = patches[-1]["headers"], _vid(events)
    assert final["Upload-Offset"] == str(size) and final["Vasset-Md5"] == md5
    assert final["Vasset-Vid"] == str(vid) and final["Vasset-Status"] == "uploaded"
    info = _check_uploaded(api, _of(events, "success")[0]["url"], cfg["ticket"], vid, size, md5)
    assert info["source_name"] == "plain clip.mp4"
    assert info["metadata"] == {"purpose": "tus-js-client"}


@pytest.mark.parametrize("with_creation", [False, True], ids=["patch-only", "creation-with-upload"])
def test_js_chunks_aligned_to_nothing(node_modules, server, api, tmp_path, with_creation):
    """chunkSize 1_000_003 on 3 MiB + 17: each chunk starts where the last answer said."""
    size = (3 << 20) + 17
    cfg, md5 = _job(server, api, tmp_path, size)
    events = _node({**cfg, "chunkSize": 1_000_003, "uploadDataDuringCreation": with_creation})
    starts, ends = [0, 1_000_003, 2_000_006, 3_000_009], [1_000_003, 2_000_006, 3_000_009, size]
    if with_creation:
        # The first chunk rides on the POST (creation-with-upload).
        assert _of(events, "response", "POST")[0]["headers"]["Upload-Offset"] == str(ends[0])
        starts, ends = starts[1:], ends[1:]
    assert [int(r["offset"]) for r in _of(events, "request", "PATCH")] == starts
    assert _offsets(events) == ends
    url = _of(events, "success")[0]["url"]
    _check_uploaded(api, url, cfg["ticket"], _vid(events), size, md5)


def test_js_deferred_length_stream(node_modules, server, api, tmp_path):
    """A plain stream: Upload-Defer-Length, the length told with the last PATCH."""
    size = (1 << 20) + 5
    cfg, md5 = _job(server, api, tmp_path, size)
    events = _node({**cfg, "stream": True, "chunkSize": 300_007})
    assert _offsets(events) == [300_007, 600_014, 900_021, size]
    url = _of(events, "success")[0]["url"]
    _check_uploaded(api, url, cfg["ticket"], _vid(events), size, md5)


@pytest.mark.parametrize("protocol", ["tus-v1", "ietf-draft-05"])
def test_js_killed_client_resumes_from_its_fingerprint(
    node_modules, server, api, tmp_path, protocol
):
    """SIGKILL mid-upload; a second process finds the URL in FileUrlStorage and sends the rest."""
    size = 4 << 20
    cfg, md5 = _job(server, api, tmp_path, size)
    cfg.update(chunkSize=256 << 10, storage=str(tmp_path / "tus-urls.json"), protocol=protocol)
    command = [NODE or "node", str(NODE_UPLOAD), json.dumps({**cfg, "delayMs": 150})]
    first = subprocess.Popen(command, cwd=JS, stdout=subprocess.PIPE, text=True)
    seen: list[dict] = []
    try:
        for line in first.stdout or ():
            seen += _events(line)
            assert seen[-1]["event"] not in ("success", "error"), seen[-1]
            if seen[-1]["event"] == "chunk" and seen[-1]["accepted"] >= 3 << 18:
                first.send_signal(signal.SIGKILL)
                break
    finally:
        first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, seen
    url = _of(seen, "url")[0]["url"]
    accepted = max(e["accepted"] for e in _of(seen, "chunk"))

    head = httpx.head(url, headers=_auth(cfg["ticket"]), timeout=30)
    assert head.status_code == 200, head.headers
    offset = int(head.headers["Upload-Offset"])
    assert accepted <= offset < size, (accepted, offset)
    assert int(head.headers["Upload-Length"]) == size
    assert head.headers["Cache-Control"] == "no-store"

    events = _node({**cfg, "resume": True})
    assert _of(events, "previous")[0]["urls"] == [url]
    assert not _of(events, "request", "POST"), "the second run created a new upload"
    assert _of(events, "request")[0]["method"] == "HEAD"
    assert int(_of(events, "request", "PATCH")[0]["offset"]) == offset
    assert sum(c["size"] for c in _of(events, "chunk")) == size - offset
    _check_uploaded(api, url, cfg["ticket"], int(head.headers["Vasset-Vid"]), size, md5)


def test_js_parallel_uploads_concatenate(node_modules, server, api, tmp_path):
    """parallelUploads 3: three partial uploads and a final one that becomes the video."""
    size = (3 << 20) + 1
    # One use: partial uploads do not count, the final one does.
    cfg, md5 = _job(server, api, tmp_path, size, uses=1)
    events = _node({**cfg, "parallelUploads": 3})
    concat = [r["concat"] for r in _of(events, "request", "POST")]
    assert concat[:3] == ["partial"] * 3 and len(concat) == 4
    assert concat[3].startswith("final;") and len(concat[3].split()) == 3
    created = _of(events, "response", "POST")
    assert [r["status"] for r in created] == [201] * 4
    assert [("Vasset-Vid" in r["headers"]) for r in created] == [False] * 3 + [True]
    url = _of(events, "success")[0]["url"]
    assert url == created[3]["headers"]["Location"]
    head = httpx.head(url, headers=_auth(cfg["ticket"]), timeout=30)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(size)
    _check_uploaded(api, url, cfg["ticket"], _vid(events), size, md5)


def test_js_abort_with_termination(node_modules, server, api, tmp_path):
    """abort(true) after two chunks: DELETE, then the upload and its video are gone."""
    cfg, _ = _job(server, api, tmp_path, 2 << 20)
    events = _node({**cfg, "chunkSize": 256 << 10, "terminateAfter": 512 << 10})
    url = _of(events, "terminated")[0]["url"]
    assert not _of(events, "success")
    headers = _auth(cfg["ticket"])
    head = httpx.head(url, headers=headers, timeout=30)
    assert head.status_code in (404, 410), head.headers
    headers.update({"Upload-Offset": str(512 << 10), "Content-Type": OCTETS})
    patch = httpx.patch(url, headers=headers, content=b"x", timeout=30)
    assert patch.status_code in (404, 410), patch.text
    status = api.call("GET", "/video/status", {"vid": _vid(events)})
    assert status.status_code == 404, status.text


@pytest.mark.parametrize(("protocol", "interop"), [("ietf-draft-05", "6"), ("ietf-draft-03", "5")])
def test_js_ietf_draft(node_modules, server, api, tmp_path, protocol, interop):
    """protocol ietf-draft-0N: Upload-Draft-Interop-Version and Upload-Complete, same result."""
    size = (1536 << 10) + 9
    cfg, md5 = _job(server, api, tmp_path, size)
    events = _node({**cfg, "protocol": protocol, "chunkSize": 512 << 10})
    assert {r["interop"] for r in _of(events, "request")} == {interop}
    created = _of(events, "response", "POST")
    assert created[0]["status"] == 201 and created[0]["headers"]["Upload-Complete"] == "?0"
    patches = _of(events, "response", "PATCH")
    assert [p["status"] for p in patches] == [204] * 4
    assert [p["headers"]["Upload-Complete"] for p in patches] == ["?0"] * 3 + ["?1"]
    # tus-js-client's file source says done only for a slice covering the whole file, so every
    # PATCH claims ?0; the server ends the upload at Upload-Length anyway (answer ?1 above).
    assert {r["complete"] for r in _of(events, "request", "PATCH")} == {"?0"}
    assert _offsets(events)[-1] == size
    url = _of(events, "success")[0]["url"]
    _check_uploaded(api, url, cfg["ticket"], _vid(events), size, md5)


# tuspy 1.1.0

TUSPY_CHUNK = (64 << 10) + 7


@pytest.mark.parametrize("flavor", ["requests", "aiohttp"])
def test_tuspy_small_chunks_with_checksums(server, api, tmp_path, flavor):
    """64 KiB + 7 chunks, each with Upload-Checksum (sha1), by the sync and the async uploader."""
    size = (1 << 20) + 333
    cfg, md5 = _job(server, api, tmp_path, size)
    path, ticket = cfg["file"], cfg["ticket"]
    client = TusClient(f"{server.url}/files/", headers={"Authorization": f"Bearer {ticket}"})
    options: dict[str, Any] = {"chunk_size": TUSPY_CHUNK, "upload_checksum": True}
    options["metadata"] = {"filename": f"tuspy-{flavor}.bin"}
    if flavor == "requests":
        uploader: Any = client.uploader(path, **options)
        uploader.upload()
    else:
        uploader = client.async_uploader(path, **options)
        asyncio.run(uploader.upload())
    assert uploader.offset == size
    last = uploader.request.response_headers
    assert last["upload-offset"] == str(size) and last["vasset-md5"] == md5
    assert last["vasset-status"] == "uploaded"
    info = _check_uploaded(api, uploader.url, ticket, int(last["vasset-vid"]), size, md5)
    assert info["source_name"] == f"tuspy-{flavor}.bin"


def test_tuspy_interrupted_then_resumed_from_file_storage(server, api, tmp_path):
    """Stop after five chunks and a bit; a new uploader finds the URL in FileStorage and ends it."""
    size = (1 << 20) + 1
    cfg, md5 = _job(server, api, tmp_path, size)
    path, ticket = cfg["file"], cfg["ticket"]
    client = TusClient(f"{server.url}/files/", headers={"Authorization": f"Bearer {ticket}"})
    db = tmp_path / "tuspy-urls.json"
    stop_at = 5 * TUSPY_CHUNK + 1000

    storage = FileStorage(str(db))
    first = client.uploader(path, chunk_size=TUSPY_CHUNK, store_url=True, url_storage=storage)
    first.upload(stop_at=stop_at)
    assert first.offset == stop_at
    storage.close()
    head = httpx.head(first.url, headers=_auth(ticket), timeout=30)
    assert head.headers["Upload-Offset"] == str(stop_at)

    storage = FileStorage(str(db))
    second = client.uploader(path, chunk_size=TUSPY_CHUNK, store_url=True, url_storage=storage)
    # The constructor looked the URL up and asked the server (HEAD) where to go on.
    assert second.url == first.url and second.offset == stop_at
    patches = 0
    while second.offset < size:
        second.upload_chunk()
        patches += 1
    storage.close()
    assert patches == -(-(size - stop_at) // TUSPY_CHUNK)
    last = second.request.response_headers
    assert last["vasset-status"] == "uploaded" and last["vasset-md5"] == md5
    _check_uploaded(api, second.url, ticket, int(head.headers["Vasset-Vid"]), size, md5)


# Uppy (Dashboard + @uppy/tus) in headless Chromium


@pytest.fixture(scope="module")
def transcode_stack(tmp_path_factory):
    """A private API and transcode worker, so an Uppy upload can go on to playable."""
    stack = Stack(tmp_path_factory.mktemp("tus-uppy"))
    try:
        yield stack.start()
    finally:
        stack.stop()


def test_uppy_dashboard_upload_becomes_playable(
    node_modules, transcode_stack, tmp_path_factory, tmp_path
):
    """Pick a clip in the Dashboard, press Upload: cross-origin tus, then transcoded (auto=1)."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (./dev test installs it)")
    stack = transcode_stack
    assert stack.server is not None
    clip = media.landscape(media.shared_dir(tmp_path_factory))
    size, md5 = clip.stat().st_size, hashlib.md5(clip.read_bytes()).hexdigest()
    ticket = _ticket(stack.api, auto=1)
    chunk = 64 << 10
    cfg = {
        "endpoint": f"{stack.server.url}/files/",
        "ticket": ticket,
        "clip": str(clip),
        "chunk": chunk,
        "outDir": str(tmp_path / "site"),
        "screenshot": str(tmp_path / "uppy.png"),
        "chromium": CHROMIUM,
    }
    stdout = _run_js(UPPY_E2E, cfg, timeout=180)
    done = json.loads(stdout.strip().splitlines()[-1])
    assert done["step"] == "done", stdout[-4000:]
    run = done["run"]
    assert run["successful"] == 1 and run["failed"] == 0 and run["error"] is None, run
    patches = [r for r in run["responses"] if r["method"] == "PATCH"]
    assert [p["status"] for p in patches] == [204] * -(-size // chunk), run
    assert [int(p["offset"]) for p in patches] == [
        min(size, chunk * (i + 1)) for i in range(len(patches))
    ]
    # Vasset-Vid was readable from another origin: the server exposes it (CORS).
    vid = run["vid"]
    assert isinstance(vid, int) and vid > 0, run
    info = _check_uploaded(stack.api, run["uploadURL"], ticket, vid, size, md5, auto=True)
    assert info["source_name"] == clip.name
    status = stack.wait(vid, timeout=150)
    assert status["status"] == "playable", status
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "uppy.png", ARTIFACTS / "uppy-dashboard.png")
    assert (ARTIFACTS / "uppy-dashboard.png").stat().st_size > 10_000
