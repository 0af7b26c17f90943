"""GET /video/events: live Server-Sent Events across API instances, Redis faults and resumes.

A private Redis (so it can be flushed and restarted) and a private deployment (Stack): API
instance A streams, instance B and a real worker cause the events. Every stream is read over a
raw socket by a small SSE reader written from the WHATWG format, not by vasset's code.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time

import pytest

from tests import media
from tests.support.api import Api
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tests.support.workers import Stack, wait_until

FAST = {"VASSET_SSE_HEARTBEAT": "0.5", "VASSET_SSE_POLL_INTERVAL": "1"}


class Reader:
    """An SSE client on a raw socket: collects events and heartbeat comments in a thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        host, _, rest = url.removeprefix("http://").partition("/")
        self.sock = socket.create_connection((host.split(":")[0], int(host.split(":")[1])))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            self.headers[name.lower()] = value.strip()
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.ended = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _chunks(self):
        if self.headers.get("transfer-encoding") != "chunked":
            while data := self.file.read1(65536):
                yield data
            return
        while size := self.file.readline():
            n = int(size.strip() or b"0", 16)
            if n == 0:
                return
            yield self.file.read(n)
            self.file.readline()

    def _read(self) -> None:
        buf = ""
        try:
            for data in self._chunks():
                buf += data.decode()
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    self._block(block)
        except (OSError, ValueError):
            pass
        self.ended = True

    def _block(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            body = json.loads(fields["data"])
            assert body["type"] == fields["event"], fields
            self.events.append({"id": int(fields["id"]), "event": fields["event"], "body": body})

    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]

    def wait(self, check, timeout: float = 20, what: str = "events"):
        return wait_until(lambda: check(self.events), timeout, what)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def catch_up(api: Api, **params) -> list[dict]:
    """Every stored event after since, through a timeout=0 call (contract-checked)."""
    r = api.call("GET", "/video/events", {"since": 0, "timeout": 0, **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream"
    out = []
    for block in r.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line and ":" in line[1:])
        if "data" in fields:
            out.append({"id": int(fields["id"]), "body": json.loads(fields["data"])})
    return out


def blob(size: int = 2048) -> bytes:
    return secrets.token_bytes(size)


@pytest.fixture(scope="module")
def rds():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(test_env, rds, tmp_path_factory):
    env = {**test_env, "VASSET_REDIS_URL": rds.url}
    stack = Stack(env, tmp_path_factory.mktemp("sse"), "sse", VASSET_LADDER="240p", **FAST)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def instance_b(stack):
    server = ServerProcess(stack.env, log_path=stack.root / "b.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def creds(stack):
    return stack.app


def client(server: ServerProcess, creds: dict) -> Api:
    return Api(server.url, creds["app_key"], creds["app_secret"])


def stream(server: ServerProcess, creds: dict, headers=None, **params) -> Reader:
    api = client(server, creds)
    reader = Reader(api.url("GET", "/video/events", params), headers)
    assert reader.status == 200
    assert reader.headers["content-type"] == "text/event-stream"
    return reader


def assert_per_video_seq(events: list[dict]) -> None:
    """ids grow, and each video's seq grows by one from event to event."""
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), ids
    last: dict[int, int] = {}
    for e in events:
        data = e["body"]["data"]
        vid, seq = data["vid"], data["seq"]
        if vid in last:
            assert seq == last[vid] + 1, (vid, last[vid], seq)
        last[vid] = seq


def test_events_through_the_other_instance_and_the_worker_arrive_in_order(
    stack, instance_b, creds, test_env, tmp_path_factory
):
    other = json.loads(stack.cli("apps", "create", "sse-other", "--json"))
    clip = media.landscape(media.shared_dir(tmp_path_factory)).read_bytes()
    everything = stream(stack.server, creds)
    with stack.fleet("fleet") as fleet:
        fleet.start(1)
        try:
            b = client(instance_b, creds)
            init = b.init("clip.mp4", clip, len(clip), auto=1).json()
            vid = init["vid"]
            one = stream(stack.server, creds, vid=vid, since=0)
            r = b.put_part(init["upload_id"], 1, clip)
            assert r.status_code == 200, r.text
            client(instance_b, other).upload("o.bin", blob(), 4096)
            done = {"video.playable", "video.transcode.succeeded"}
            everything.wait(
                lambda ev: done <= {e["event"] for e in ev if e["body"]["data"]["vid"] == vid},
                timeout=90,
                what="the worker's events",
            )
            one.wait(lambda ev: done <= {e["event"] for e in ev}, timeout=10)
        finally:
            everything.close()
            one.close()
    mine = [e for e in everything.events if e["body"]["data"]["vid"] == vid]
    types = [e["event"] for e in mine]
    for expected in (
        "upload.created",
        "upload.completed",
        "video.transcode.queued",
        "video.transcode.started",
        "video.rendition.ready",
        "video.playable",
    ):
        assert expected in types, types
    assert types.index("upload.completed") < types.index("video.transcode.started")
    assert_per_video_seq(everything.events)
    assert [e["id"] for e in one.events] == [e["id"] for e in mine]  # vid= filters, misses none
    assert {e["body"]["data"]["vid"] for e in everything.events} == {vid}  # not the other app's
    assert everything.comments.count("hb") >= 1


def test_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(stack, instance_b, creds):
    b = client(instance_b, creds)
    first = stream(stack.server, creds)
    vids = [b.upload(f"r{i}.bin", blob(), 4096)["vid"] for i in range(2)]
    first.wait(lambda ev: len(ev) >= 4, what="the first uploads")
    first.close()
    last = first.ids()[-1]
    more = [b.upload(f"s{i}.bin", blob(), 4096)["vid"] for i in range(2)]
    assert b.call("POST", "/video/delete", {"vid": vids[0]}).status_code == 200
    second = stream(stack.server, creds, headers={"Last-Event-ID": str(last)}, since=1)
    try:
        stored = [e["id"] for e in catch_up(b) if e["id"] > first.ids()[0] - 1]
        second.wait(lambda ev: len(first.events) + len(ev) >= len(stored), what="the resume")
        time.sleep(1.5)  # nothing more may come
    finally:
        second.close()
    assert first.ids() + second.ids() == stored
    seen = {e["body"]["data"]["vid"] for e in first.events + second.events}
    assert seen == {*vids, *more}
    assert "video.deleted" in [e["event"] for e in second.events]
    assert_per_video_seq(first.events + second.events)


def test_flushall_and_a_redis_restart_mid_stream_lose_nothing(stack, instance_b, creds, rds):
    # A listener that polls only every 60 s: what it gets quickly came through the hub.
    slow = ServerProcess(
        {**stack.env, "VASSET_SSE_POLL_INTERVAL": "60"}, log_path=stack.root / "slow.log"
    ).start()
    b = client(instance_b, creds)
    try:
        reader = stream(slow, creds)
        try:
            b.upload("f0.bin", blob(), 4096)
            reader.wait(lambda ev: len(ev) >= 2, timeout=5, what="pub/sub wake-up")
            rds.client().flushall()
            b.upload("f1.bin", blob(), 4096)
            reader.wait(lambda ev: len(ev) >= 4, timeout=5, what="after FLUSHALL")
            rds.stop()
            rds.start()  # same port, empty
            wait_until(
                lambda: rds.client().execute_command("PUBSUB", "NUMPAT") >= 1,
                20,
                "the hub's reconnect",
            )
            wait_until(lambda: _upload_ok(b), 20, "instance B after the restart")
            reader.wait(lambda ev: len(ev) >= 6, timeout=5, what="after the restart")
        finally:
            reader.close()
        stored = [e["id"] for e in catch_up(b) if e["id"] >= reader.ids()[0]]
        assert reader.ids() == stored
    finally:
        slow.stop()
        # Instance A's pooled Redis connections died too: later tests need it answering.
        wait_until(lambda: _answers(client(stack.server, creds)), 20, "instance A")


def _answers(api: Api) -> bool:
    return api.call("GET", "/video/list", {"limit": 1}).status_code == 200


def _upload_ok(b: Api) -> bool:
    try:
        b.upload("g.bin", blob(), 4096)
        return True
    except Exception:
        return False


def test_publishes_lost_to_another_redis_are_polled_from_the_outbox(stack, creds, tmp_path):
    # Instance C publishes to a Redis that A does not listen to: A learns only by polling.
    elsewhere = RedisServer().start()
    c = ServerProcess(
        {**stack.env, "VASSET_REDIS_URL": elsewhere.url}, log_path=tmp_path / "c.log"
    ).start()
    reader = stream(stack.server, creds)
    try:
        vid = client(c, creds).upload("p.bin", blob(), 4096)["vid"]
        reader.wait(lambda ev: len(ev) >= 2, timeout=10, what="polled events")
        assert {e["body"]["data"]["vid"] for e in reader.events} == {vid}
    finally:
        reader.close()
        c.stop()
        elsewhere.stop()


def test_refusals_and_the_catch_up_call(stack, creds):
    other = json.loads(stack.cli("apps", "create", "sse-stranger", "--json"))
    api = client(stack.server, creds)
    vid = api.upload("x.bin", blob(), 4096)["vid"]
    stranger = client(stack.server, other)
    r = stranger.call("GET", "/video/events", {"vid": vid, "timeout": 0})
    assert r.status_code == 404 and r.json()["code"] == "VideoNotFound"
    r = api.call("GET", "/video/events", {"timeout": 0}, headers={"Last-Event-ID": "x"})
    assert r.status_code == 400 and r.json()["parameter"] == "Last-Event-ID"
    assert api.call("GET", "/video/events", {"timeout": 99999}).status_code == 400
    assert [e["body"]["data"]["vid"] for e in catch_up(api, vid=vid)] == [vid, vid]
    assert catch_up(stranger) == [] or all(
        e["body"]["data"]["vid"] != vid for e in catch_up(stranger)
    )
    # Without since the stream starts at the newest event: a timeout=0 call sends none.
    r = api.call("GET", "/video/events", {"timeout": 0})
    assert "id: " not in r.text and r.text.startswith("retry: ")


def test_shutdown_ends_open_streams_within_the_grace(stack, creds):
    server = ServerProcess({**stack.env, "VASSET_SHUTDOWN_GRACE": "8"}).start()
    readers = [stream(server, creds) for _ in range(3)]
    started = time.monotonic()
    server.stop()
    took = time.monotonic() - started
    assert server.proc is not None and server.proc.returncode == 0
    assert took < 4, took
    for reader in readers:
        wait_until(lambda r=reader: r.ended, 5, "the stream's end")
        reader.close()
