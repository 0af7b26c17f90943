"""The outbox: every client-visible change writes its event in the change's own transaction."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from sqlalchemy import text

from tests.support.db import sql


def events_of(env: dict[str, str], vid: int) -> list[tuple[int, str, dict]]:
    """(seq, type, body) of a video's events, oldest first."""
    rows = sql(env, "SELECT seq, type, body FROM event WHERE video_id = :v ORDER BY id", v=vid)
    return [(seq, kind, json.loads(body)) for seq, kind, body in rows]


def test_an_upload_and_a_delete_write_their_events_in_order(api, test_env):
    data = os.urandom(300_000)
    done = api.upload("clip.mp4", data, 100 * 1024)
    vid = done["vid"]
    api.call("POST", "/video/delete", {"vid": vid}).raise_for_status()
    events = events_of(test_env, vid)
    assert [kind for _, kind, _ in events] == [
        "upload.created",
        "upload.completed",
        "video.deleted",
    ]
    assert [seq for seq, _, _ in events] == [1, 2, 3]
    for seq, kind, body in events:
        assert body["type"] == kind and body["timestamp"].endswith("Z")
        assert body["data"]["vid"] == vid and body["data"]["seq"] == seq
        assert body["data"]["upload_id"] == done["upload_id"]
    assert [body["data"]["status"] for _, _, body in events] == ["uploading", "uploaded", "deleted"]
    completed = events[1][2]["data"]
    assert completed["md5"] == hashlib.md5(data).hexdigest() and completed["size"] == len(data)


def test_instant_upload_reports_its_completion(api, test_env):
    data = os.urandom(200_000)
    api.upload("first.mp4", data, 100 * 1024)
    again = api.init("again.mp4", data, 100 * 1024).json()
    assert again["instant"]
    assert [kind for _, kind, _ in events_of(test_env, again["vid"])] == ["upload.completed"]


def test_a_move_that_rolls_back_emits_nothing(api, test_env):
    from vasset.db import create_engine, transaction
    from vasset.videos import repository as videos
    from vasset.videos.state import VideoStatus

    vid = api.upload("rolled.mp4", os.urandom(150_000), 100 * 1024)["vid"]
    before = events_of(test_env, vid)

    class Abandon(Exception):
        pass

    async def move_then_fail() -> None:
        engine = create_engine(test_env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            async with transaction(engine) as conn:
                await videos.move_video(
                    conn, vid, VideoStatus.UPLOADED, VideoStatus.TRANSCODE_QUEUED
                )
                inside = await conn.execute(
                    text("SELECT COUNT(*) FROM event WHERE video_id = :v"), {"v": vid}
                )
                assert inside.scalar_one() == len(before) + 1  # written in the transaction
                raise Abandon()
        finally:
            await engine.dispose()

    with pytest.raises(Abandon):
        asyncio.run(move_then_fail())
    assert events_of(test_env, vid) == before
    status = api.call("GET", "/video/status", {"vid": vid}).json()["status"]
    assert status == "uploaded"


def test_a_webhook_endpoint_gets_one_pending_delivery_per_matching_event(api, test_env):
    vid = api.upload("hooked.mp4", os.urandom(120_000), 100 * 1024)["vid"]
    app_id = sql(test_env, "SELECT app_id FROM video WHERE id = :v", v=vid)[0][0]
    sql(
        test_env,
        "INSERT INTO webhook_endpoint (app_id, url, events, secret, create_time)"
        " VALUES (:a, 'https://hooks.example.test/a', 'video.deleted', 'whsec_AAAA', 0)",
        a=app_id,
    )
    api.call("POST", "/video/delete", {"vid": vid}).raise_for_status()
    rows = sql(
        test_env,
        "SELECT e.type, d.status FROM webhook_delivery d JOIN event e ON e.id = d.event_id"
        " WHERE e.video_id = :v",
        v=vid,
    )
    assert rows == [("video.deleted", "pending")]
    sql(test_env, "DELETE FROM webhook_delivery WHERE app_id = :a", a=app_id)
    sql(test_env, "DELETE FROM webhook_endpoint WHERE app_id = :a", a=app_id)
