"""Webhook delivery by real `vasset worker` processes to real receivers on 127.0.0.1.

Every receiver verifies each request with the `standardwebhooks` library. The module's stack
allows 127.0.0.1 as a target and compresses the retry schedule (x 0.00001), so ten attempts
take seconds. Each test registers its endpoints on an app of its own, so it sees only its events.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from tests import media
from tests.support.api import Api
from tests.support.db import sql
from tests.support.redis_server import RedisServer
from tests.support.webhooks import Receiver, new_secret
from tests.support.workers import Stack, settle, wait_until

WEBHOOK_ENV = {
    "VASSET_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "VASSET_WEBHOOK_RETRY_SCALE": "0.00001",
    "VASSET_WEBHOOK_TIMEOUT": "3",
}


@pytest.fixture(scope="module")
def stack(test_env, tmp_path_factory):
    stack = Stack(test_env, tmp_path_factory.mktemp("hooks"), "hooks", **WEBHOOK_ENV).start()
    fleet = stack.fleet("fleet")
    fleet.start(1)
    yield stack
    fleet.stop()
    settle(stack.env)
    stack.stop()


@pytest.fixture
def solo(test_env, tmp_path_factory, request):
    """A stack of the test's own, with no worker yet (the test starts its own)."""
    name = "hk" + request.node.name[5:13].replace("_", "")
    stack = Stack(test_env, tmp_path_factory.mktemp(name), name, **WEBHOOK_ENV).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def new_app(stack: Stack) -> tuple[int, Api]:
    """A fresh app of the stack: (app id, signing client)."""
    app = json.loads(stack.cli("apps", "create", "hooks", "--json"))
    assert stack.server is not None
    return int(app["id"]), Api(stack.server.url, app["app_key"], app["app_secret"])


def add_endpoint(env: dict[str, str], app_id: int, url: str, secret: str, events: str = "*") -> int:
    """Register a target the way the endpoints API stores it; returns its id."""
    sql(
        env,
        "INSERT INTO webhook_endpoint (app_id, url, events, secret, enabled, create_time)"
        " VALUES (:a, :u, :e, :s, 1, :now)",
        a=app_id,
        u=url,
        e=events,
        s=secret,
        now=int(time.time()),
    )
    return int(sql(env, "SELECT MAX(id) FROM webhook_endpoint WHERE app_id = :a", a=app_id)[0][0])


def deliveries(env: dict[str, str], endpoint_id: int) -> list[tuple]:
    """(status, attempts, last_status, last_error, event id) of an endpoint's deliveries."""
    return sql(
        env,
        "SELECT status, attempts, last_status, last_error, event_id FROM webhook_delivery"
        " WHERE endpoint_id = :e ORDER BY id",
        e=endpoint_id,
    )


def endpoint(env: dict[str, str], endpoint_id: int) -> tuple:
    """(enabled, disabled_reason, last_success_at, failing_since) of an endpoint."""
    return sql(
        env,
        "SELECT enabled, disabled_reason, last_success_at, failing_since FROM webhook_endpoint"
        " WHERE id = :e",
        e=endpoint_id,
    )[0]


def upload(api: Api, size: int = 150_000) -> dict:
    """An upload left at uploaded: two events (upload.created, upload.completed)."""
    return api.upload("clip.mp4", os.urandom(size), 100 * 1024, auto=0)


def test_500_then_200_is_retried_with_the_same_id_and_verifies(stack):
    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret], answers=[500, 200]) as hook:
        ep = add_endpoint(stack.env, app_id, hook.url, secret)
        vid = upload(api)["vid"]
        got = hook.wait(3)
        first = got[0]
        again = [d for d in got[1:] if d.id == first.id]
        assert first.answered == 500 and [d.answered for d in again] == [200]
        assert again[0].body == first.body and again[0].signature != ""
        assert not hook.unverified
        rows = sql(stack.env, "SELECT id, body FROM event WHERE video_id = :v ORDER BY id", v=vid)
        bodies = {f"evt_{eid}": body.encode() for eid, body in rows}
        for d in got:
            assert bodies[d.id] == d.body  # the outbox row's exact bytes
            assert d.headers["content-type"] == "application/json"
            assert d.headers["user-agent"] == "vasset"
            assert abs(int(d.timestamp) - time.time()) < 30
        assert {d.event["type"] for d in got} == {"upload.created", "upload.completed"}
        wait_until(
            lambda: all(r[0] == "succeeded" for r in deliveries(stack.env, ep)), 10, "settled"
        )
        rows_ = deliveries(stack.env, ep)
        assert sorted(r[1] for r in rows_) == [1, 2] and {r[2] for r in rows_} == {200}
        enabled, _, last_success, failing_since = endpoint(stack.env, ep)
        assert enabled and last_success and failing_since is None


def test_410_disables_the_endpoint(stack):
    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret], answers=[410]) as hook:
        ep = add_endpoint(stack.env, app_id, hook.url, secret)
        upload(api)
        hook.wait(1)
        wait_until(lambda: not endpoint(stack.env, ep)[0], 10, "the endpoint disabled")
        assert "410" in endpoint(stack.env, ep)[1]
        wait_until(
            lambda: all(r[0] == "failed" for r in deliveries(stack.env, ep)), 10, "all failed"
        )
        # The other pending delivery of that upload is not attempted any more.
        time.sleep(1.0)
        assert len(hook.deliveries) == 1
        upload(api)  # a disabled endpoint gets no new deliveries
        time.sleep(1.0)
        assert len(hook.deliveries) == 1


def test_the_last_attempt_fails_and_stays_visible(stack):
    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret], answers=[503]) as hook:
        ep = add_endpoint(stack.env, app_id, hook.url, secret, events="upload.created")
        upload(api)
        got = hook.wait(10, timeout=60)
        assert len({d.id for d in got}) == 1
        wait_until(lambda: deliveries(stack.env, ep)[0][0] == "failed", 15, "failed")
        time.sleep(1.0)
        assert len(hook.deliveries) == 10  # the schedule's ten attempts, no more
        status, attempts, last_status, _, _ = deliveries(stack.env, ep)[0]
        assert (status, attempts, last_status) == ("failed", 10, 503)
        # Five days without a success have not passed: the endpoint stays enabled.
        enabled, _, last_success, failing_since = endpoint(stack.env, ep)
        assert enabled and last_success is None and failing_since


def test_an_endpoint_failing_for_days_is_disabled(stack):
    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret], answers=[500]) as hook:
        ep = add_endpoint(stack.env, app_id, hook.url, secret)
        six_days_ago = int(time.time()) - 6 * 86400
        sql(
            stack.env,
            "UPDATE webhook_endpoint SET failing_since = :t WHERE id = :e",
            t=six_days_ago,
            e=ep,
        )
        upload(api)
        hook.wait(1)
        wait_until(lambda: not endpoint(stack.env, ep)[0], 10, "the endpoint disabled")
        assert "days" in endpoint(stack.env, ep)[1]


def test_rotation_both_secrets_verify_during_the_overlap(stack):
    app_id, api = new_app(stack)
    old, new = new_secret(), new_secret()
    with Receiver([old, new]) as hook:
        ep = add_endpoint(stack.env, app_id, hook.url, new, events="upload.completed")
        sql(
            stack.env,
            "UPDATE webhook_endpoint SET old_secret = :o, old_secret_until = :u WHERE id = :e",
            o=old,
            u=int(time.time()) + 3600,
            e=ep,
        )
        upload(api)
        during = hook.wait(1)[0]
        assert during.verified_by == [0, 1]  # one delivery, both secrets
        assert len(during.signature.split(" ")) == 2
        sql(
            stack.env,
            "UPDATE webhook_endpoint SET old_secret_until = :u WHERE id = :e",
            u=int(time.time()) - 1,
            e=ep,
        )
        upload(api)
        after = hook.wait(2)[1]
        assert after.verified_by == [1] and " " not in after.signature


def test_a_rolled_back_change_emits_nothing(stack):
    from vasset.db import create_engine, transaction
    from vasset.videos import repository as videos
    from vasset.videos.state import VideoStatus

    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret]) as hook:
        vid = upload(api)["vid"]
        ep = add_endpoint(stack.env, app_id, hook.url, secret)

        class Abandon(Exception):
            pass

        async def move(commit: bool) -> None:
            engine = create_engine(stack.env["VASSET_DATABASE_URL"], pool_size=1)
            try:
                async with transaction(engine) as conn:
                    await videos.move_video(
                        conn, vid, VideoStatus.UPLOADED, VideoStatus.TRANSCODE_QUEUED
                    )
                    if not commit:
                        raise Abandon()
            finally:
                await engine.dispose()

        with pytest.raises(Abandon):
            asyncio.run(move(commit=False))
        time.sleep(1.5)
        assert hook.deliveries == [] and deliveries(stack.env, ep) == []
        asyncio.run(move(commit=True))
        got = hook.wait(1)
        assert got[0].event["type"] == "video.transcode.queued"
        assert got[0].event["data"]["seq"] == 3
    settle(stack.env)


EXPECTED_RUN = [
    "upload.created",
    "upload.completed",
    "video.transcode.queued",
    "video.transcode.started",
]


def test_a_full_run_delivers_its_events_in_seq_order(stack, clips):
    app_id, api = new_app(stack)
    secret = new_secret()
    with Receiver([secret]) as hook:
        add_endpoint(stack.env, app_id, hook.url, secret)
        path = media.landscape(clips)
        vid = api.upload(path.name, path.read_bytes(), 1 << 20, auto=1)["vid"]

        def finished() -> bool:
            # With progressive HLS an early video.playable (ladder "partial") comes first.
            with hook.lock:
                return any(
                    d.event["type"] == "video.playable"
                    and d.event["data"].get("ladder") == "complete"
                    for d in hook.deliveries
                )

        wait_until(finished, 120, "video.playable delivered")
        count = sql(stack.env, "SELECT COUNT(*) FROM event WHERE video_id = :v", v=vid)[0][0]
        got = hook.wait(count)
        assert not hook.unverified
        events = sorted((d.event for d in got), key=lambda e: e["data"]["seq"])
        assert [e["data"]["seq"] for e in events] == list(range(1, count + 1))
        assert all(e["data"]["vid"] == vid for e in events)
        types = [e["type"] for e in events]
        assert types[:4] == EXPECTED_RUN
        # The pipeline's order: the job succeeds, then the video becomes playable.
        assert types[-2:] == ["video.transcode.succeeded", "video.playable"], types
        middle = set(types[4:-2])
        assert {"video.rendition.ready", "video.snapshots.ready"} <= middle, types
        assert middle <= {
            "video.transcode.progress",
            "video.rendition.ready",
            "video.snapshots.ready",
            "video.playable",  # the early one of a progressive ladder
        }, types
        early = [e["data"].get("ladder") for e in events[4:-2] if e["type"] == "video.playable"]
        assert early in ([], ["partial"]), types
        assert events[-1]["data"]["ladder"] == "complete"
        progress = [e["data"]["progress"] for e in events if e["type"].endswith(".progress")]
        assert progress == sorted(progress) and progress[-1] == 100, progress
        # A later seq is a later event: ids and timestamps grow with it.
        ids = [
            int(d.id.removeprefix("evt_"))
            for d in sorted(got, key=lambda d: d.event["data"]["seq"])
        ]
        assert ids == sorted(ids)
        stamps = [e["timestamp"] for e in events]
        assert stamps == sorted(stamps)


def test_retention_sweep_removes_old_events_and_settled_deliveries(stack):
    app_id, api = new_app(stack)
    secret = new_secret()
    vid = upload(api)["vid"]
    ep = add_endpoint(stack.env, app_id, "http://127.0.0.1:9/never", secret)
    old_ms = int((time.time() - 31 * 86400) * 1000)
    rows = []
    for status in ("succeeded", "failed", "pending"):
        sql(
            stack.env,
            "INSERT INTO event (app_id, video_id, seq, type, body, create_time)"
            " VALUES (:a, :v, 0, 'upload.created', '{}', :t)",
            a=app_id,
            v=vid,
            t=old_ms,
        )
        eid = sql(stack.env, "SELECT MAX(id) FROM event")[0][0]
        # Pending ones far in the future: the worker leaves them alone.
        sql(
            stack.env,
            "INSERT INTO webhook_delivery (endpoint_id, event_id, app_id, status,"
            " next_attempt_at, create_time, update_time) VALUES (:e, :ev, :a, :s, :n, :t, :t)",
            e=ep,
            ev=eid,
            a=app_id,
            s=status,
            n=old_ms + 10**12,
            t=old_ms // 1000,
        )
        rows.append(eid)
    report = json.loads(stack.cli("janitor"))
    assert report["events_removed"] >= 2 and report["deliveries_removed"] >= 2
    left = {r[0] for r in sql(stack.env, "SELECT id FROM event WHERE video_id = :v", v=vid)}
    assert rows[0] not in left and rows[1] not in left
    assert rows[2] in left  # its delivery is still pending
    assert [r[0] for r in deliveries(stack.env, ep)] == ["pending"]
    # The upload's own (recent) events stay.
    assert len(left) == 3


def test_a_worker_killed_mid_delivery_still_delivers_with_the_same_id(solo):
    app_id, api = new_app(solo)
    secret = new_secret()
    with Receiver([secret]) as hook, solo.fleet("kill") as fleet:
        ep = add_endpoint(solo.env, app_id, hook.url, secret, events="upload.created")
        hook.hold()
        (worker,) = fleet.start(1)
        upload(api)
        hook.wait_held()
        worker.kill()  # SIGKILL while the receiver holds the request
        hook.release()  # its answer reaches nobody
        assert deliveries(solo.env, ep)[0][0] == "pending"
        fleet.start(1)
        first, again = hook.wait(2, timeout=40)
        assert first.id == again.id and first.body == again.body
        wait_until(lambda: deliveries(solo.env, ep)[0][0] == "succeeded", 10, "succeeded")


def test_deliveries_go_on_with_redis_down(solo):
    app_id, api = new_app(solo)
    secret = new_secret()
    redis = RedisServer().start()
    try:
        # The worker's Redis is a private one; the API keeps the shared one to sign calls.
        fleet = solo.fleet("noredis", VASSET_REDIS_URL=redis.url)
        with Receiver([secret]) as hook, fleet:
            add_endpoint(solo.env, app_id, hook.url, secret)
            fleet.start(1)
            redis.stop()
            time.sleep(1.0)
            upload(api)
            got = hook.wait(2, timeout=20)
            assert {d.event["type"] for d in got} == {"upload.created", "upload.completed"}
            assert fleet.workers[0].alive()
    finally:
        redis.stop()


async def test_the_sender_pins_checked_addresses_keeps_host_and_follows_no_redirect():
    from vasset import errors
    from vasset.events.sender import PinnedResolver, Sender

    with Receiver([], answers=[302, 200, 200]) as hook:
        port = hook.port
        sender = Sender("127.0.0.1,localhost", timeout=3, connections=4)
        other = Sender("", timeout=3, connections=4)
        try:
            # A redirect is an answer, not followed: one request, its status returned.
            assert await sender.post(f"http://127.0.0.1:{port}/hook?a=%2F", {}, b"{}") == 302
            # An allow-listed name connects to its checked address; Host names the target.
            assert await sender.post(f"http://localhost:{port}/hook", {}, b"{}") == 200
            assert [d.headers["host"] for d in hook.deliveries] == [
                f"127.0.0.1:{port}",
                f"localhost:{port}",
            ]
            # Not allow-listed: a loopback literal and a name resolving there are refused
            # before sending, and the resolver a new connection uses refuses it by itself.
            for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook"):
                with pytest.raises(errors.InvalidWebhookUrl):
                    await other.post(url, {}, b"{}")
            with pytest.raises(errors.InvalidWebhookUrl):
                await PinnedResolver("").resolve("localhost", port)
            assert len(hook.deliveries) == 2
            # A receiver holding the request runs into the timeout.
            hook.hold()
            short = Sender("127.0.0.1", timeout=0.5, connections=1)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await short.post(f"http://127.0.0.1:{port}/hook", {}, b"{}")
            assert time.monotonic() - started < 2
            await short.aclose()
        finally:
            hook.release()
            await sender.aclose()
            await other.aclose()
