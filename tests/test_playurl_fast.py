"""GET /video/playurl on its fast path (vasset/playback/fast.py) and the shared cache reads.

The server tests run against the session's real `vasset serve` (tracing off, so playurl is
answered at the edge) with video rows written straight into its database; the cache tests
drive a PlaybackService on a real migrated MariaDB and count the statements it sends.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, text

from tests.conftest import create_app
from tests.support.api import Api, signed_query
from tests.support.db import migrated_engine, sql
from tests.support.server import ROOT
from vasset import errors
from vasset.playback.service import PlaybackService

JSON = "application/json; charset=utf-8"


def _add_playable_video(env: dict[str, str], app_id: int) -> int:
    """A playable source with one 360p MP4 rendition and a cover snapshot; its vid."""
    now = int(time.time())
    sql(
        env,
        "INSERT INTO video (app_id, source_name, create_time, update_time, status, duration,"
        " media_info) VALUES (:a, 'f.mp4', :t, :t, 'playable', 3000, '{}')",
        a=app_id,
        t=now,
    )
    vid = sql(env, "SELECT MAX(id) FROM video WHERE app_id = :a", a=app_id)[0][0]
    sql(
        env,
        "INSERT INTO video (app_id, parent_id, source_name, create_time, update_time, status,"
        " definition, format, storage_uri, file_size, video_width, video_height, media_info)"
        " VALUES (:a, :p, 'f.mp4', :t, :t, 'playable', '360p', 'mp4', :k, 1234, 640, 360,"
        " '{\"bitrate\": 800000}')",
        a=app_id,
        p=vid,
        t=now,
        k=f"media/{vid}/1-fast/360p.mp4",
    )
    sql(
        env,
        "INSERT INTO video_snapshot (video_id, image_index, time_ms, storage_uri, width, height)"
        " VALUES (:v, 0, 0, :k, 640, 360)",
        v=vid,
        k=f"media/{vid}/1-fast/snap/0.jpg",
    )
    return vid


@pytest.fixture(scope="module")
def fast(server, test_env):
    """An app of its own (these tests disable it) and a playable video of it."""
    creds = create_app(test_env, "fastpath")
    vid = _add_playable_video(test_env, creds["id"])
    api = Api(server.url, creds["app_key"], creds["app_secret"])
    return SimpleNamespace(server=server, env=test_env, creds=creds, api=api, vid=vid)


def _apps(env: dict[str, str], verb: str, app_key: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "vasset", "apps", verb, app_key],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def test_answer_and_headers_match_the_litestar_routes(fast):
    r = fast.api.call("GET", "/video/playurl", {"vid": fast.vid}, headers={"Origin": "http://a"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vid"] == fast.vid and body["status"] == "playable" and body["duration"] == 3000
    assert [u["definition"] for u in body["play_urls"]] == ["360p"]
    assert body["play_urls"][0]["size"] == 1234 and body["play_urls"][0]["bitrate"] == 800000
    assert body["cover_url"] and f"media/{fast.vid}/1-fast/snap/0.jpg" in body["cover_url"]
    assert int(r.headers["content-length"]) == len(r.content)
    # /video/snapshot is a Litestar route of the same kind: the same headers, value for value.
    other = fast.api.call("GET", "/video/snapshot", {"vid": fast.vid}, headers={"Origin": "x"})
    assert other.status_code == 200
    assert set(r.headers) == set(other.headers)
    for name in ("content-type", "x-content-type-options", "access-control-allow-origin"):
        assert r.headers[name] == other.headers[name], name
    assert r.headers["content-type"] == JSON
    assert r.headers["x-request-id"] != other.headers["x-request-id"]


def test_answers_built_in_the_same_second_follow_their_own_parameters(fast):
    """Answers are memoised per (definition, format, expiry): each call still gets its own."""
    ask = {"vid": fast.vid, "expires": 600}
    answers = [
        fast.api.call("GET", "/video/playurl", {**ask, **extra})
        for extra in ({}, {"definition": "360p"}, {"format": "hls"}, {"expires": 900}, {})
    ]
    plain, by_definition, hls, longer, again = answers
    assert plain.status_code == by_definition.status_code == again.status_code == 200
    assert plain.json()["play_urls"] == by_definition.json()["play_urls"]
    assert hls.status_code == 409 and hls.json()["code"] == "VideoNotPlayable"  # no HLS rows
    until = plain.json()["play_urls"][0]["expires_at"]
    assert longer.json()["play_urls"][0]["expires_at"] - until in (299, 300, 301)
    assert again.json()["play_urls"][0]["expires_at"] in (until, until + 1)


def test_errors_carry_the_request_id_and_the_documented_codes(fast):
    missing = fast.api.call("GET", "/video/playurl", {"vid": 10**12})
    assert missing.status_code == 404 and missing.headers["content-type"] == JSON
    assert missing.json()["code"] == "VideoNotFound"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    bad = fast.api.call("GET", "/video/playurl", {"vid": "x"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "vid"
    unsigned = httpx.get(fast.server.url + f"/video/playurl?vid={fast.vid}")
    assert unsigned.status_code == 400 and unsigned.json()["code"] == "MissingParameter"
    q = signed_query("GET", "/video/playurl", {"vid": fast.vid}, **_keys(fast))
    forged = q.replace(f"vid={fast.vid}", f"vid={fast.vid + 1}")
    r = httpx.get(fast.server.url + "/video/playurl?" + forged)
    assert r.status_code == 401 and r.json()["code"] == "SignatureDoesNotMatch"
    # The signature covers the path as sent: an escaped spelling of the route is not the same.
    r = httpx.get(fast.server.url + "/video/%70layurl?" + q)
    assert r.status_code in (401, 404), r.text


def _keys(fast) -> dict[str, str]:
    return {"app_key": fast.creds["app_key"], "secret": fast.creds["app_secret"]}


def test_a_nonce_is_spent_once_even_by_concurrent_replays(fast):
    q = signed_query("GET", "/video/playurl", {"vid": fast.vid}, **_keys(fast))
    url = fast.server.url + "/video/playurl?" + q
    first = httpx.get(url)
    assert first.status_code == 200
    again = httpx.get(url)
    assert again.status_code == 401 and again.json()["code"] == "SignatureNonceUsed"
    # The same fresh call sent 8 times at once lands in one batched pipeline: one wins.
    q = signed_query("GET", "/video/playurl", {"vid": fast.vid}, **_keys(fast))
    url = fast.server.url + "/video/playurl?" + q
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: httpx.get(url).status_code, range(8)))
    assert sorted(codes) == [200] + [401] * 7


def test_a_disabled_app_is_refused_at_once_with_warm_caches(fast):
    for _ in range(3):  # warm the app cache and the playurl cache
        assert fast.api.call("GET", "/video/playurl", {"vid": fast.vid}).status_code == 200
    _apps(fast.env, "disable", fast.creds["app_key"])
    try:
        r = fast.api.call("GET", "/video/playurl", {"vid": fast.vid})
        assert r.status_code == 401 and r.json()["code"] == "InvalidAppKey"
    finally:
        _apps(fast.env, "enable", fast.creds["app_key"])
    assert fast.api.call("GET", "/video/playurl", {"vid": fast.vid}).status_code == 200


def _requests(url: str, status: str) -> float:
    text_ = httpx.get(url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text_):
        for s in family.samples:
            labels = s.labels
            if (
                s.name == "vasset_http_requests_total"
                and labels.get("route") == "/video/playurl"
                and labels.get("method") == "GET"
                and labels.get("status") == status
            ):
                return s.value
    return 0.0


def test_metrics_count_what_the_fast_path_answers(fast):
    url = fast.server.url
    ok, missing = _requests(url, "200"), _requests(url, "404")
    for _ in range(5):
        assert fast.api.call("GET", "/video/playurl", {"vid": fast.vid}).status_code == 200
    for _ in range(2):
        assert fast.api.call("GET", "/video/playurl", {"vid": 10**12}).status_code == 404
    # Other tests of this worker may call playurl meanwhile: at least ours were counted.
    assert _requests(url, "200") - ok >= 5
    assert _requests(url, "404") - missing >= 2


# --- the playurl cache's shared reads, in process against a real MariaDB ---


def _service(engine, ttl: float) -> PlaybackService:
    settings = SimpleNamespace(playurl_cache_ttl=ttl)
    return PlaybackService(SimpleNamespace(engine=engine, settings=settings))  # type: ignore[arg-type]


async def _rows(engine, status: str = "playable") -> tuple[int, int]:
    now = int(time.time())
    async with engine.begin() as conn:
        app = await conn.execute(
            text(
                "INSERT INTO app (name, app_key, app_secret, enabled, create_time)"
                " VALUES ('c', :k, 's', 1, :t)"
            ),
            {"k": f"k{time.monotonic_ns()}", "t": now},
        )
        app_id = app.lastrowid
        src = await conn.execute(
            text(
                "INSERT INTO video (app_id, source_name, create_time, update_time, status,"
                " media_info) VALUES (:a, 'f', :t, :t, :s, '{}')"
            ),
            {"a": app_id, "t": now, "s": status},
        )
        await conn.execute(
            text(
                "INSERT INTO video (app_id, parent_id, source_name, create_time, update_time,"
                " status, definition, format, storage_uri, media_info)"
                " VALUES (:a, :p, 'f', :t, :t, 'playable', '360p', 'mp4', 'k', '{}')"
            ),
            {"a": app_id, "p": src.lastrowid, "t": now},
        )
    return app_id, src.lastrowid


def _count_selects(engine) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen


def test_concurrent_misses_share_one_read_and_forget_wins(test_env):
    async def main() -> None:
        async with migrated_engine(test_env["VASSET_DATABASE_URL"], "pucache") as engine:
            app_id, vid = await _rows(engine)
            service = _service(engine, ttl=60)
            selects = _count_selects(engine)
            answers = await asyncio.gather(*(service._playable(app_id, vid) for _ in range(20)))
            assert all(a is answers[0] for a in answers)
            assert len(selects) == 4  # video, renditions, cover, captions: once for all twenty
            await service._playable(app_id, vid)
            assert len(selects) == 4  # cached
            # A forget() while a read is in flight: that read's answer is not cached.
            service.forget(vid)
            reading = asyncio.ensure_future(service._playable(app_id, vid))
            await asyncio.sleep(0)
            service.forget(vid)
            await reading
            await service._playable(app_id, vid)
            assert len(selects) == 12
            # A failed read reaches every waiter and is not cached.
            fails = await asyncio.gather(
                *(service._playable(app_id, vid + 10**6) for _ in range(5)),
                return_exceptions=True,
            )
            assert all(isinstance(f, errors.VideoNotFound) for f in fails)
            assert len(selects) == 13  # only the video row was asked for, once

    asyncio.run(main())


def test_an_unsettled_video_is_read_every_time(test_env):
    async def main() -> None:
        async with migrated_engine(test_env["VASSET_DATABASE_URL"], "pucache") as engine:
            app_id, vid = await _rows(engine, status="transcoding")
            service = _service(engine, ttl=60)
            selects = _count_selects(engine)
            for _ in range(3):
                (video, renditions, _, captions), _ = await service._playable(app_id, vid)
                assert video.status == "transcoding" and len(renditions) == 1 and captions == []
            assert len(selects) == 12
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE video SET status = 'playable' WHERE id = :v"), {"v": vid}
                )
            await service._playable(app_id, vid)
            await service._playable(app_id, vid)
            assert len(selects) == 16  # settled now: read once, then cached

    asyncio.run(main())
