"""Webhook endpoints over real HTTP: register, list, delete, rotate; deliveries; SSRF; the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

from tests.support.api import Api
from tests.support.db import sql
from tests.support.server import ROOT, ServerProcess

#: Public address literals: registration resolves nothing for them (the tests run offline).
PUBLIC = "https://93.184.216.34/hooks/vasset"
SECRET = re.compile(r"^whsec_([A-Za-z0-9+/]+={0,2})$")
REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",  # a name that resolves to loopback
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://192.168.1.20/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/hook",  # CGNAT
    "http://0.0.0.0/hook",
    "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
]


def new_app(env: dict[str, str]) -> dict:
    """A new app in the test database (in-process: the CLI's own path is test_cli's)."""
    from vasset.apps.service import create_app_keys
    from vasset.db import create_engine

    async def make() -> dict:
        engine = create_engine(env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            return await create_app_keys(engine, f"hooks-{secrets.token_hex(4)}")
        finally:
            await engine.dispose()

    return asyncio.run(make())


@pytest.fixture
def own(server, test_env) -> Api:
    """A signing client of an app of this test's own (its endpoints and events only)."""
    creds = new_app(test_env)
    return Api(server.url, creds["app_key"], creds["app_secret"])


def create(api: Api, url: str = PUBLIC, events: str | None = None):
    params = {"url": url} if events is None else {"url": url, "events": events}
    return api.call("POST", "/webhooks/endpoints", params)


def listed(api: Api) -> list[dict]:
    r = api.call("GET", "/webhooks/endpoints")
    assert r.status_code == 200, r.text
    return r.json()["endpoints"]


def secret_bytes(secret: str) -> bytes:
    m = SECRET.match(secret)
    assert m, secret
    return base64.b64decode(m.group(1), validate=True)


def test_create_list_delete(own):
    r = create(own, events="video.playable,video.transcode.failed,video.playable")
    assert r.status_code == 200, r.text
    made = r.json()
    assert set(made) == {"id", "url", "events", "secret"}
    assert made["url"] == PUBLIC
    assert made["events"] == ["video.playable", "video.transcode.failed"]
    assert len(secret_bytes(made["secret"])) >= 24
    second = create(own).json()
    assert second["events"] == ["*"] and second["secret"] != made["secret"]

    endpoints = listed(own)
    assert [e["id"] for e in endpoints] == [made["id"], second["id"]]
    first = endpoints[0]
    assert "whsec_" not in json.dumps(endpoints), "a listing never shows a secret"
    assert first["enabled"] is True and first["disabled_reason"] is None
    assert first["last_success_at"] is None and first["failing_since"] is None
    assert first["old_secret_expires_at"] is None
    assert abs(first["create_time"] - time.time()) < 60

    r = own.call("POST", "/webhooks/endpoints/delete", {"id": made["id"]})
    assert r.status_code == 200 and r.json() == {"id": made["id"], "deleted": True}
    assert [e["id"] for e in listed(own)] == [second["id"]]
    again = own.call("POST", "/webhooks/endpoints/delete", {"id": made["id"]})
    assert again.status_code == 404 and again.json()["code"] == "EndpointNotFound"
    gone = own.call("POST", "/webhooks/endpoints/rotate", {"id": made["id"]})
    assert gone.status_code == 404 and gone.json()["code"] == "EndpointNotFound"


def test_rotate_keeps_the_old_secret_for_the_overlap(own, test_env):
    made = create(own).json()
    r = own.call("POST", "/webhooks/endpoints/rotate", {"id": made["id"]})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert set(rotated) == {"id", "secret", "old_secret_expires_at"}
    assert rotated["id"] == made["id"] and rotated["secret"] != made["secret"]
    assert len(secret_bytes(rotated["secret"])) >= 24
    assert abs(rotated["old_secret_expires_at"] - (time.time() + 86400)) < 60
    [(secret, old, until)] = sql(
        test_env,
        "SELECT secret, old_secret, old_secret_until FROM webhook_endpoint WHERE id = :i",
        i=made["id"],
    )
    assert (secret, old, until) == (
        rotated["secret"],
        made["secret"],
        rotated["old_secret_expires_at"],
    )
    [endpoint] = listed(own)
    assert endpoint["old_secret_expires_at"] == rotated["old_secret_expires_at"]
    # A second rotation: the newest two secrets sign, the first one no longer does.
    third = own.call("POST", "/webhooks/endpoints/rotate", {"id": made["id"]}).json()
    [(secret, old)] = sql(
        test_env,
        "SELECT secret, old_secret FROM webhook_endpoint WHERE id = :i",
        i=made["id"],
    )
    assert (secret, old) == (third["secret"], rotated["secret"])


def test_non_public_targets_are_refused(own):
    for url in REFUSED:
        r = create(own, url)
        assert r.status_code == 400, (url, r.text)
        body = r.json()
        assert body["code"] == "InvalidWebhookUrl", url
        assert "non-public address" in body["message"], url
        assert "VASSET_WEBHOOK_ALLOW_HOSTS" in body["message"]
    assert listed(own) == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://93.184.216.34/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pw@93.184.216.34/x", "credentials"),
        ("https://user@93.184.216.34/x", "credentials"),
        ("https:///x", "no host"),
        ("not a url", "whitespace"),
        ("https://exa mple.com/", "whitespace"),
        ("https://" + "a" * 2050 + ".com/", "longer than"),
        ("https://no-such-name.invalid/x", "cannot resolve"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(own, url, words):
    r = create(own, url)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidWebhookUrl"
    assert words in r.json()["message"]
    assert listed(own) == []


def test_bad_parameters(own):
    r = own.call("POST", "/webhooks/endpoints", {})
    assert r.status_code == 400 and r.json()["code"] == "MissingParameter"
    assert r.json()["parameter"] == "url"
    for events in ("video.nope", "upload.created,bogus", ",", "*,upload.created"):
        r = create(own, events=events)
        assert r.status_code == 400, events
        assert r.json()["code"] == "InvalidParameter" and r.json()["parameter"] == "events"
    r = own.call("POST", "/webhooks/endpoints/delete", {"id": "x"})
    assert r.status_code == 400 and r.json()["parameter"] == "id"
    r = own.call("GET", "/webhooks/deliveries", {"endpoint_id": 1, "status": "lost"})
    assert r.status_code == 400 and r.json()["parameter"] == "status"
    assert listed(own) == []


def test_the_allow_list_admits_named_private_hosts(test_env, app_creds, tmp_path):
    env = {**test_env, "VASSET_WEBHOOK_ALLOW_HOSTS": "LocalHost, 127.0.0.1,[::1]"}
    private = ServerProcess(env, log_path=tmp_path / "server.log").start()
    try:
        creds = new_app(test_env)
        api = Api(private.url, creds["app_key"], creds["app_secret"])
        for url in ("http://localhost:9/hook", "http://127.0.0.1:8080/x", "http://[::1]:9/"):
            r = create(api, url)
            assert r.status_code == 200, (url, r.text)
        # Not on the list: still refused, including another name for the same address.
        for url in ("http://10.0.0.1/hook", "http://2130706433/hook", "http://localhost./x"):
            r = create(api, url)
            assert r.status_code == 400 and r.json()["code"] == "InvalidWebhookUrl", url
        assert len(listed(api)) == 3
    finally:
        private.stop()


def _delivery_of_a_new_upload(api: Api, endpoint_id: int) -> dict:
    """Start an upload (its upload.created event fans out) and return its delivery."""
    r = api.init("a.mp4", b"x" * 1000, 1000)
    assert r.status_code == 200, r.text
    r = api.call("GET", "/webhooks/deliveries", {"endpoint_id": endpoint_id})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_before"] is None
    [delivery] = page["deliveries"]
    return delivery


def test_deliveries_list_filter_and_retry(own, test_env):
    made = create(own).json()
    playable_only = create(own, events="video.playable").json()
    delivery = _delivery_of_a_new_upload(own, made["id"])
    assert delivery["endpoint_id"] == made["id"]
    assert delivery["event_type"] == "upload.created"
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["last_status"] is None and delivery["last_error"] is None
    assert abs(delivery["next_attempt_at"] / 1000 - time.time()) < 60
    r = own.call("GET", "/webhooks/deliveries", {"endpoint_id": playable_only["id"]})
    assert r.json()["deliveries"] == [], "an endpoint gets only the types it asked for"

    # The last attempt failed: a retry makes it pending again now, keeping its attempts.
    sql(
        test_env,
        "UPDATE webhook_delivery SET status = 'failed', attempts = 10, last_status = 500,"
        " last_error = 'HTTP 500', next_attempt_at = 0 WHERE id = :i",
        i=delivery["id"],
    )
    failed = own.call(
        "GET", "/webhooks/deliveries", {"endpoint_id": made["id"], "status": "failed"}
    ).json()["deliveries"]
    assert [(d["id"], d["status"], d["last_status"]) for d in failed] == [
        (delivery["id"], "failed", 500)
    ]
    assert failed[0]["next_attempt_at"] is None
    pending = own.call(
        "GET", "/webhooks/deliveries", {"endpoint_id": made["id"], "status": "pending"}
    )
    assert pending.json()["deliveries"] == []
    before = int(time.time() * 1000)
    r = own.call("POST", "/webhooks/deliveries/retry", {"id": delivery["id"]})
    assert r.status_code == 200, r.text
    retried = r.json()
    assert retried["status"] == "pending" and retried["attempts"] == 10
    assert before - 1000 <= retried["next_attempt_at"] <= int(time.time() * 1000) + 1000
    assert retried["last_status"] == 500, "the last attempt's outcome stays visible"

    sql(
        test_env, "UPDATE webhook_delivery SET status = 'succeeded' WHERE id = :i", i=delivery["id"]
    )
    r = own.call("POST", "/webhooks/deliveries/retry", {"id": delivery["id"]})
    assert r.status_code == 409 and r.json()["code"] == "InvalidState"
    r = own.call("POST", "/webhooks/deliveries/retry", {"id": 2**62})
    assert r.status_code == 404 and r.json()["code"] == "DeliveryNotFound"


def test_deliveries_page_newest_first(own):
    made = create(own).json()
    for _ in range(3):
        assert own.init("a.mp4", b"y" * 500, 500).status_code == 200
    query = {"endpoint_id": made["id"], "limit": 2}
    first = own.call("GET", "/webhooks/deliveries", query).json()
    assert len(first["deliveries"]) == 2 and first["next_before"] == first["deliveries"][-1]["id"]
    rest = own.call("GET", "/webhooks/deliveries", {**query, "before": first["next_before"]})
    ids = [d["id"] for d in first["deliveries"] + rest.json()["deliveries"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)


def test_another_apps_endpoints_and_deliveries_are_404(own, other_api):
    made = create(own).json()
    delivery = _delivery_of_a_new_upload(own, made["id"])
    assert made["id"] not in [e["id"] for e in listed(other_api)]
    for path in ("/webhooks/endpoints/delete", "/webhooks/endpoints/rotate"):
        r = other_api.call("POST", path, {"id": made["id"]})
        assert r.status_code == 404 and r.json()["code"] == "EndpointNotFound", path
    r = other_api.call("GET", "/webhooks/deliveries", {"endpoint_id": made["id"]})
    assert r.status_code == 404 and r.json()["code"] == "EndpointNotFound"
    r = other_api.call("POST", "/webhooks/deliveries/retry", {"id": delivery["id"]})
    assert r.status_code == 404 and r.json()["code"] == "DeliveryNotFound"
    # Untouched: still there, same secret generation, still listed by its owner.
    assert [e["id"] for e in listed(own)] == [made["id"]]
    assert listed(own)[0]["old_secret_expires_at"] is None
    # Its deliveries die with it: deleted, it is 404 for its own app too.
    own.call("POST", "/webhooks/endpoints/delete", {"id": made["id"]})
    r = own.call("POST", "/webhooks/deliveries/retry", {"id": delivery["id"]})
    assert r.status_code == 404 and r.json()["code"] == "DeliveryNotFound"


def vasset(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vasset", "webhooks", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli(own, test_env):
    key = own.app_key
    out = vasset(test_env, "create", key, PUBLIC, "--events", "video.playable", "--json")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["events"] == ["video.playable"] and secret_bytes(made["secret"])
    assert [e["id"] for e in listed(own)] == [made["id"]], "the API sees what the CLI made"

    out = vasset(test_env, "list", key, "--json")
    assert [e["id"] for e in json.loads(out.stdout)] == [made["id"]]
    assert "whsec_" not in out.stdout
    out = vasset(test_env, "list", key)
    assert out.stdout.startswith(f"id={made['id']} url={PUBLIC}")

    out = vasset(test_env, "rotate", str(made["id"]), "--json")
    rotated = json.loads(out.stdout)
    assert rotated["secret"] != made["secret"] and rotated["old_secret_expires_at"] > time.time()

    everything = vasset(test_env, "create", key, PUBLIC, "--json")
    all_id = json.loads(everything.stdout)["id"]
    delivery = _delivery_of_a_new_upload(own, all_id)
    out = vasset(test_env, "deliveries", str(all_id), "--json")
    assert [d["id"] for d in json.loads(out.stdout)] == [delivery["id"]]
    out = vasset(test_env, "deliveries", str(all_id), "--status", "failed", "--json")
    assert json.loads(out.stdout) == []
    out = vasset(test_env, "retry", str(delivery["id"]), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "pending"

    out = vasset(test_env, "delete", str(made["id"]))
    assert out.returncode == 0 and f"id={made['id']} deleted=True" in out.stdout
    assert [e["id"] for e in listed(own)] == [all_id]

    # Refusals are one line and exit 1.
    for args, message in [
        (("delete", str(made["id"])), "no such webhook endpoint"),
        (("retry", str(2**62)), "no such webhook delivery"),
        (("create", key, "http://localhost/x"), "non-public address"),
        (("create", "ak_nobody", PUBLIC), "no app with key"),
    ]:
        out = vasset(test_env, *args)
        assert out.returncode == 1, args
        assert out.stderr.startswith("vasset webhooks: ") and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
