"""Hardening of authentication: disabled apps, the Redis pool, the console, strict inputs, metrics.

Everything runs over real HTTP against real `vasset serve` processes on MySQL and Redis. The
module's own server shares the session database and Redis prefix (a second API instance), with a
Redis pool of 4 connections, the console enabled and a metrics token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
import redis

from tests.conftest import create_app
from tests.support.api import Api, b64name, signed_query
from tests.support.server import ROOT, ServerProcess
from vasset.console import session
from vasset.upload.names import decode_file_name, sanitize_file_name

CONSOLE_KEY = "console-" + secrets.token_urlsafe(12)
METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(12)
PSIZE = 100 * 1024


@pytest.fixture(scope="module")
def console_app(test_env) -> dict:
    """The app the module server's console acts for."""
    return create_app(test_env, "hardening-console")


@pytest.fixture(scope="module")
def second(test_env, console_app, tmp_path_factory) -> ServerProcess:
    """A second API instance on the session's database and Redis, with a 4-connection pool."""
    env = {
        **test_env,
        "VASSET_REDIS_POOL_SIZE": "4",
        "VASSET_CONSOLE_KEY": CONSOLE_KEY,
        "VASSET_CONSOLE_APP_KEY": console_app["app_key"],
        "VASSET_METRICS_TOKEN": METRICS_TOKEN,
    }
    log = tmp_path_factory.mktemp("hardening-auth") / "server.log"
    proc = ServerProcess(env, log_path=log).start()
    yield proc
    proc.stop()


@pytest.fixture
def login_counter(test_env):
    """Clears the console's failed-login counter of 127.0.0.1 before and after a test."""
    key = f"{test_env['VASSET_REDIS_PREFIX']}console:login:127.0.0.1"
    client = redis.Redis.from_url(test_env["VASSET_REDIS_URL"])
    client.delete(key)
    yield key
    client.delete(key)
    client.close()


def cli(env: dict, *args: str) -> str:
    """Run the real `vasset` command."""
    out = subprocess.run(
        [sys.executable, "-m", "vasset", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["code"]


# 7. A disabled app stops working at once, on every instance, for signed and token calls.


def test_disabling_an_app_takes_effect_at_once_everywhere(test_env, server, second):
    creds = create_app(test_env, "to-disable")
    apis = [Api(s.url, creds["app_key"], creds["app_secret"]) for s in (server, second)]
    data = os.urandom(PSIZE + 1000)
    init = apis[0].init("clip.mp4", data, PSIZE).json()
    upid, token = init["upload_id"], init["upload_token"]

    def put(base: str, pseq: int) -> httpx.Response:
        body = data[(pseq - 1) * PSIZE : pseq * PSIZE]
        md5 = hashlib.md5(body).hexdigest()
        url = f"{base}/video/upload/upload?upid={upid}&pseq={pseq}&hash={md5}&token={token}"
        return httpx.put(url, content=body)

    def resume(base: str) -> httpx.Response:
        return httpx.get(f"{base}/video/upload/resume", params={"upid": upid, "token": token})

    # Warm every cache: both instances have just accepted this app.
    for api in apis:
        assert api.call("GET", "/video/upload/limits").status_code == 200
        assert resume(api.base_url).status_code == 200
    assert put(server.url, 1).status_code == 200

    assert cli(test_env, "apps", "disable", creds["app_key"]).strip() == "ok"
    for api in apis:
        assert error_code(api.call("GET", "/video/upload/limits"), 401) == "InvalidAppKey"
        assert error_code(resume(api.base_url), 401) == "InvalidAppKey"
        assert error_code(put(api.base_url, 2), 401) == "InvalidAppKey"
    # A wrong token still says so (the app's state is not revealed to strangers).
    r = httpx.get(f"{server.url}/video/upload/resume", params={"upid": upid, "token": "x" * 43})
    assert error_code(r, 401) == "InvalidUploadToken"

    assert cli(test_env, "apps", "enable", creds["app_key"]).strip() == "ok"
    for api in apis:
        assert api.call("GET", "/video/upload/limits").status_code == 200
        assert resume(api.base_url).json()["missing"] == [2]
    done = put(second.url, 2)
    assert done.status_code == 200 and done.json()["status"] == "uploaded", done.text


def test_the_console_stops_when_its_app_is_disabled(test_env, second, console_app, login_counter):
    client = httpx.Client(base_url=second.url, timeout=30)
    assert client.post("/console/login", json={"key": CONSOLE_KEY}).status_code == 200
    assert client.get("/console/api/videos").status_code == 200
    cli(test_env, "apps", "disable", console_app["app_key"])
    try:
        assert error_code(client.get("/console/api/videos"), 409) == "InvalidState"
    finally:
        cli(test_env, "apps", "enable", console_app["app_key"])
    assert client.get("/console/api/videos").status_code == 200


# 8. A burst larger than the Redis pool waits for connections instead of answering 503.


def test_bursts_larger_than_the_redis_pool_get_no_5xx(second, app_creds, login_counter):
    api = Api(second.url, app_creds["app_key"], app_creds["app_secret"])

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            calls = [
                client.get(api.url("GET", "/video/status", {"vid": 1 + i % 5})) for i in range(250)
            ]
            calls += [
                client.post(second.url + "/console/login", json={"key": CONSOLE_KEY})
                for _ in range(200)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert [s for s in statuses if s >= 500] == []
    assert statuses[250:] == [200] * 200, "every correct console login succeeds"
    assert set(statuses[:250]) <= {200, 404}


# 9. The console lockout cannot be raced.


def test_concurrent_wrong_logins_stop_at_the_limit(second, login_counter):
    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=second.url, timeout=60, limits=limits) as client:
            calls = [client.post("/console/login", json={"key": f"guess-{i}"}) for i in range(60)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(burst())
    assert statuses.count(401) <= 10, statuses
    assert statuses.count(401) + statuses.count(429) == 60, statuses
    r = httpx.post(second.url + "/console/login", json={"key": CONSOLE_KEY})
    assert error_code(r, 429) == "Throttled"
    assert 1 <= int(r.headers["retry-after"]) <= 300


def test_a_correct_login_resets_the_failure_count(second, login_counter):
    for _ in range(9):
        assert httpx.post(second.url + "/console/login", json={"key": "guess"}).status_code == 401
    assert httpx.post(second.url + "/console/login", json={"key": CONSOLE_KEY}).status_code == 200
    for _ in range(10):
        assert httpx.post(second.url + "/console/login", json={"key": "guess"}).status_code == 401
    assert httpx.post(second.url + "/console/login", json={"key": "guess"}).status_code == 429


# 10. A cookie with an absurd expiry is no session, not a 500.


@pytest.mark.parametrize("expiry", ["9" * 5000, "1" * 13, "-1", "+99999999999", " 9999999999"])
def test_absurd_console_cookies_are_not_logged_in(second, expiry):
    cookies = {session.COOKIE: f"v1.{expiry}.x.y"}
    r = httpx.get(second.url + "/console/api/videos", cookies=cookies)
    assert error_code(r, 401) == "InvalidConsoleKey"
    r = httpx.get(second.url + "/console/api/session", cookies=cookies)
    assert r.status_code == 200 and r.json()["logged_in"] is False


def test_session_values_need_ascii_digits():
    secret, key = b"s" * 32, "console-key"
    good = session.issue(secret, key, int(time.time()))
    assert session.valid(secret, key, good, time.time())
    _, expires, nonce, signature = good.split(".")
    for fake in ["²" * 3, "١٢٣٤٥٦٧٨٩٠", "9" * 5000, expires + "\n"]:
        assert not session.valid(secret, key, f"v1.{fake}.{nonce}.{signature}", time.time())


# 13. Strict signing parameters.


def _signed_status(api: Api, **over) -> httpx.Response:
    q = signed_query("GET", "/video/status", {"vid": 2**62}, api.app_key, api.app_secret, **over)
    return httpx.get(f"{api.base_url}/video/status?{q}")


def test_a_correct_call_still_passes(api):
    assert _signed_status(api).status_code == 404  # authenticated; the video does not exist


@pytest.mark.parametrize(
    "shape",
    [
        lambda now: f" {now}",
        lambda now: f"{now} ",
        lambda now: f"+{now}",
        lambda now: f"{now // 1000}_{now % 1000:03d}",
        lambda now: str(now).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        lambda now: str(now).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    ],
    ids=["leading-space", "trailing-space", "plus", "underscore", "arabic-indic", "fullwidth"],
)
def test_timestamps_are_ascii_digits_only(api, shape):
    r = _signed_status(api, timestamp=shape(int(time.time())))
    assert error_code(r, 400) == "InvalidParameter"
    assert "timestamp" in r.json()["message"]


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\u0660"])
def test_random_has_no_trailing_extras(api, suffix):
    r = _signed_status(api, random=secrets.token_hex(12) + suffix)
    assert error_code(r, 400) == "InvalidParameter"
    assert "random" in r.json()["message"]


# 13. File names: '+' survives form decoding, invisible characters are dropped.


def _uploaded_name(api: Api, fn: str) -> str:
    data = os.urandom(2000)
    params = {"fn": fn, "fsize": len(data), "psize": PSIZE, "hash": hashlib.md5(data).hexdigest()}
    init = api.call("POST", "/video/upload/init", params)
    assert init.status_code == 200, init.text
    done = api.put_part(init.json()["upload_id"], 1, data)
    assert done.status_code == 200, done.text
    info = api.call("GET", "/video/mediainfo", {"vid": done.json()["vid"]})
    assert info.status_code == 200, info.text
    return info.json()["source_name"]


def test_fn_keeps_a_trailing_plus_sent_unencoded(api):
    name = "clip.mp4~"  # nine bytes: standard Base64 ends in '+', with no padding
    fn = b64name(name)
    assert fn.endswith("+")
    # A '+' sent unencoded reaches the server as a space (form decoding): sign what it sees.
    assert _uploaded_name(api, fn.replace("+", " ")) == name


def test_invisible_characters_leave_the_source_name(api):
    name = "\u202eevil\u200b\u2066 clip\u2069\ufeff 视频 👨\u200d👩\u200d👧.mp4"
    assert _uploaded_name(api, b64name(name)) == "evil clip 视频 👨\u200d👩\u200d👧.mp4"


def test_names_unit():
    plus = base64.b64encode(b"clip.mp4~").decode()
    assert decode_file_name(plus.replace("+", " ")) == "clip.mp4~"
    assert decode_file_name(plus.replace("+", " ") + "\n") == "clip.mp4~"
    assert sanitize_file_name("report\u202excod.exe") == "reportxcod.exe"
    assert sanitize_file_name("\u200b\ufeff\u2060") == "untitled"
    assert sanitize_file_name("a\x85b\u2028c\u2029d.mp4") == "abcd.mp4"
    assert sanitize_file_name("😀 日本語 café.mp4") == "😀 日本語 café.mp4"
    assert sanitize_file_name("👍🏽\u200d👍 ok.mp4") == "👍🏽\u200d👍 ok.mp4"
    assert sanitize_file_name("a\u200db.mp4") == "ab.mp4"  # a joiner outside emoji is dropped


# 13. /metrics needs the token once one is set, and never carries CORS headers.


def test_metrics_are_open_without_a_configured_token(server):
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 200
    assert "vasset_http_requests_total" in r.text
    assert httpx.get(server.url + "/internal/metrics").status_code == 404  # the old route is gone


def test_metrics_need_the_bearer_token(second):
    url = second.url + "/metrics"
    for headers in [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
    ]:
        r = httpx.get(url, headers=headers)
        assert error_code(r, 401) == "InvalidMetricsToken"
        assert r.headers["www-authenticate"].startswith("Bearer")
    origin = {"Origin": "https://evil.example"}
    r = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}", **origin})
    assert r.status_code == 200
    assert "vasset_upload_bytes_received_total" in r.text
    assert "access-control-allow-origin" not in r.headers
    preflight = {**origin, "Access-Control-Request-Method": "GET"}
    r = httpx.options(url, headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    # Public routes keep their CORS headers.
    r = httpx.get(second.url + "/health", headers=origin)
    assert r.headers["access-control-allow-origin"] == "*"
