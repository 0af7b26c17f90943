"""SDK events: client.events() against the real server (SSE, and polling when the server lacks
the route), verify_webhook() against the standardwebhooks library, vasset-cli watch."""

from __future__ import annotations

import base64
import json
import os
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import standardwebhooks
from vasset_client import Client, Event, WebhookVerificationError, errors, verify_webhook
from vasset_client.events import parse_sse
from vasset_client.webhooks import sign_webhook

from tests.sdk.conftest import make_client
from tests.sdk.test_cli import run_main

KIB = 1024


def upload(client: Client, size: int = 120 * KIB) -> int:
    """A one-part upload; returns its vid (events: upload.created, upload.completed)."""
    data = os.urandom(size)
    init = client.init_upload("events.mp4", size, size)
    answer = client.upload_part(init.upload_id, 1, data)
    assert answer.completed and answer.vid
    return answer.vid


def has_events_route(client: Client) -> bool:
    """Whether the server streams GET /video/events (the status line only; never the body)."""
    url = client.signed_url("GET", "/video/events", {"since": 0})
    with httpx.stream("GET", url, timeout=10) as r:
        if r.status_code == 404:
            r.read()
            return r.json().get("code") != "NotFound"
        return True


@pytest.fixture
def sse(client) -> Client:
    if not has_events_route(client):
        pytest.skip("the server has no GET /video/events yet")
    return client


class LegacyServer:
    """A real HTTP front of the server as an older version: GET /video/events is 404 NotFound."""

    def __init__(self, upstream: str) -> None:
        http = httpx.Client(timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/video/events"):
                    body = b'{"code":"NotFound","message":"no such route"}'
                    status, ctype = 404, "application/json"
                else:
                    length = int(self.headers.get("content-length") or 0)
                    content = self.rfile.read(length) if length else b""
                    r = http.request(self.command, upstream + self.path, content=content)
                    body, status = r.content, r.status_code
                    ctype = r.headers.get("content-type", "application/json")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.http = http
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


# Server-Sent Events from the real server


def test_replay_and_live_events_of_one_video(sse):
    vid = upload(sse)
    replay = list(sse.events(vid=vid, since=0, timeout=3))
    assert [e.type for e in replay][:2] == ["upload.created", "upload.completed"]
    assert [e.seq for e in replay] == list(range(1, len(replay) + 1))
    assert all(e.vid == vid and e.id is not None and not e.synthesized for e in replay)
    assert replay[1].status == "uploaded" and replay[1].data["size"] == 120 * KIB
    assert replay[0].data["upload_id"] and replay[0].timestamp.endswith("Z")
    ids = [e.id for e in replay]
    assert ids == sorted(ids)

    # Resuming after the first event skips exactly that one.
    again = list(sse.events(vid=vid, since=ids[0], timeout=3))
    assert [e.id for e in again] == ids[1:]

    # Live: a deletion made while the stream is open arrives with the next seq.
    seen: list[Event] = []

    def consume() -> None:
        for event in sse.events(vid=vid, since=ids[-1], timeout=20):
            seen.append(event)
            if event.type == "video.deleted":
                return

    reader = threading.Thread(target=consume)
    reader.start()
    with make_client(sse.base_url, {"app_key": sse.app_key, "app_secret": sse.app_secret}) as c:
        c.delete(vid)
    reader.join(25)
    assert [e.type for e in seen] == ["video.deleted"]
    assert seen[0].seq == len(replay) + 1 and seen[0].status == "deleted"


def test_app_stream_sees_every_video_and_not_other_apps(sse, other_client):
    mine = upload(sse)
    theirs = upload(other_client)
    events = list(sse.events(since=0, timeout=3))
    vids = {e.vid for e in events}
    assert mine in vids and theirs not in vids


def test_cli_watch_prints_events_and_exits_on_the_end_state(sse, capsys):
    vid = upload(sse)
    creds = [f"--url={sse.base_url}", f"--app-key={sse.app_key}", f"--app-secret={sse.app_secret}"]
    rc, out, err = run_main(capsys, "watch", str(vid), "--timeout", "3", *creds)
    assert rc == 4 and "did not settle" in err  # uploaded, nobody transcodes: a timeout
    lines = out.splitlines()
    assert "#1 upload.created uploading" in lines[0] and "#2 upload.completed uploaded" in lines[1]
    sse.delete(vid)
    rc, out, _ = run_main(capsys, "watch", str(vid), "--timeout", "10", "--json", *creds)
    assert rc == 1  # deleted before the watch began: VideoNotFound, an API error


# The polling fallback against a server without /video/events


def test_events_fall_back_to_polling_without_the_route(server, app_creds):
    legacy = LegacyServer(server.url)
    try:
        with make_client(legacy.url, app_creds) as c:
            vid = upload(c)
            got: list[Event] = []

            def consume() -> None:
                for event in c.events(vid=vid, timeout=20, poll_interval=0.2):
                    got.append(event)

            reader = threading.Thread(target=consume)
            reader.start()
            for _ in range(50):
                if got:
                    break
                threading.Event().wait(0.1)
            c.delete(vid)
            reader.join(25)
    finally:
        legacy.close()
    assert [e.type for e in got] == ["upload.completed", "video.deleted"]
    assert all(e.synthesized and e.id is None and e.vid == vid for e in got)
    assert got[0].status == "uploaded"


def test_cli_watch_polls_a_legacy_server(server, app_creds, capsys):
    legacy = LegacyServer(server.url)
    try:
        with make_client(legacy.url, app_creds) as c:
            vid = upload(c)
        creds = [
            f"--url={legacy.url}",
            f"--app-key={app_creds['app_key']}",
            f"--app-secret={app_creds['app_secret']}",
        ]
        rc, out, err = run_main(capsys, "watch", str(vid), "--timeout", "2", *creds)
    finally:
        legacy.close()
    assert rc == 4, err
    assert out.splitlines()[0].endswith("upload.completed uploaded 0% (polled)")


# The SSE parser


def test_parse_sse_follows_the_event_stream_rules():
    lines = [
        ": hb",
        "id: 7",
        "event: upload.created",
        'data: {"type": "upload.created",',
        'data: "data": {"vid": 1, "seq": 1}}',
        "",
        ": hb",
        "",
        "retry: 1500",
        "data:{}",
        "",
        "id: 9",
        "event: x",
    ]
    frames = list(parse_sse(lines))
    assert [(f.id, f.event, f.retry) for f in frames] == [
        ("7", "upload.created", None),
        ("7", None, 1500),
    ]
    event = Event.from_sse(frames[0].id, frames[0].event, frames[0].data)
    assert (event.id, event.type, event.vid, event.seq) == (7, "upload.created", 1, 1)
    assert frames[1].data == "{}"  # the last id carries over; an unfinished frame is dropped


# verify_webhook against the standardwebhooks library


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BODY = json.dumps({"type": "video.playable", "timestamp": "x", "data": {"vid": 1, "seq": 4}})


def _headers(secrets: list[str], msg_id: str = "msg_1", at: datetime | None = None) -> dict:
    at = at or datetime.now(UTC)
    sigs = " ".join(standardwebhooks.Webhook(s).sign(msg_id, at, BODY) for s in secrets)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at.timestamp())),
        "Webhook-Signature": sigs,
    }


def test_verify_webhook_accepts_what_standardwebhooks_signs():
    headers = _headers([SECRET])
    assert verify_webhook(headers, BODY.encode(), SECRET)["data"]["seq"] == 4
    assert verify_webhook(headers, BODY, SECRET)["type"] == "video.playable"
    # And the library accepts what the SDK signs.
    stamp = int(headers["Webhook-Timestamp"])
    mine = {**headers, "Webhook-Signature": sign_webhook(SECRET, "msg_1", stamp, BODY)}
    assert standardwebhooks.Webhook(SECRET).verify(BODY, mine)["data"]["vid"] == 1


def test_verify_webhook_during_rotation_either_secret_verifies():
    both = _headers([OTHER, SECRET])
    assert verify_webhook(both, BODY, SECRET)["data"]["vid"] == 1
    assert verify_webhook(both, BODY, OTHER)["data"]["vid"] == 1
    # A receiver holding both secrets accepts a delivery signed with either alone.
    assert verify_webhook(_headers([OTHER]), BODY, [SECRET, OTHER])["data"]["vid"] == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Webhook-Signature": None}, "missing_headers"),
        ({"Webhook-Timestamp": "soon"}, "bad_timestamp"),
        ({"Webhook-Id": "msg_2"}, "no_match"),
        ({"Webhook-Signature": "v1a,AAAA"}, "no_match"),
    ],
)
def test_verify_webhook_refuses_bad_headers(change, reason):
    headers = {k: v for k, v in {**_headers([SECRET]), **change}.items() if v is not None}
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(headers, BODY, SECRET)
    assert info.value.reason == reason


def test_verify_webhook_refuses_a_changed_body_a_wrong_secret_and_old_deliveries():
    headers = _headers([SECRET])
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(headers, BODY.replace("4", "5"), SECRET)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, BODY, OTHER)
    old = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 301, UTC)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(_headers([SECRET], at=old), BODY, SECRET)
    assert info.value.reason == "too_old"
    future = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 301, UTC)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(_headers([SECRET], at=future), BODY, SECRET)
    assert info.value.reason == "too_new"
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook(headers, BODY, "whsec_not base64!")
    assert info.value.reason == "bad_secret"


def test_events_errors_are_typed(server, app_creds):
    wrong = {**app_creds, "app_secret": "wrong"}
    with make_client(server.url, wrong, retries=0) as c, pytest.raises(errors.VassetError) as info:
        next(iter(c.events(vid=1, timeout=5)))
    assert info.value.status in (401, 403, 404)
