"""The janitor: temp files, bytes of deleted videos, and one janitor at a time."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.support.db import sql
from vasset.context import build_context, close_context
from vasset.janitor import run_guarded, sweep
from vasset.locks import LeaseLock
from vasset.settings import load_settings


def settings_for(test_env, tmp_path: Path, **extra):
    env = {**test_env, "VASSET_TEMP_DIR": str(tmp_path / "scratch"), **extra}
    env["VASSET_REDIS_PREFIX"] = (
        test_env["VASSET_REDIS_PREFIX"] + "jan:" + os.urandom(3).hex() + ":"
    )
    return load_settings(env)


def sweep_once(settings) -> dict:
    """One janitor pass with its own connections."""

    async def run() -> dict:
        ctx = build_context(settings)
        try:
            return await sweep(ctx)
        finally:
            await close_context(ctx)

    return asyncio.run(run())


def test_old_temp_files_go_young_ones_stay(test_env, tmp_path):
    settings = settings_for(test_env, tmp_path, VASSET_TEMP_MAX_AGE="3600")
    scratch = Path(settings.temp_dir)
    (scratch / "job-1-1").mkdir(parents=True)
    (scratch / "job-1-1" / "source").write_bytes(b"x")
    (scratch / "fresh.tmp").write_bytes(b"y")
    old = time.time() - 7200
    os.utime(scratch / "job-1-1", (old, old))

    report = sweep_once(settings)
    assert report["temp_removed"] == 1
    assert not (scratch / "job-1-1").exists() and (scratch / "fresh.tmp").exists()


def test_bytes_of_deleted_videos_go_once_unreferenced(test_env, tmp_path, app_creds):
    settings = settings_for(test_env, tmp_path)
    root = Path(test_env["VASSET_STORAGE_URL"][len("file://") :]) / "objects"
    key = f"sources/1/999/{os.urandom(4).hex()}/source"
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(b"bytes")
    now = int(time.time())
    for deleted in (now, None):
        sql(
            test_env,
            "INSERT INTO video (app_id, source_name, create_time, update_time, status,"
            " storage_uri, deleted_at) VALUES (:a, 'j', :t, :t, 'uploaded', :k, :d)",
            a=app_creds["id"],
            t=now,
            k=key,
            d=deleted,
        )

    sweep_once(settings)
    assert (root / key).exists(), "a live video still references the bytes"
    sql(test_env, "UPDATE video SET deleted_at = :t WHERE storage_uri = :k", t=now, k=key)
    report = sweep_once(settings)
    assert report["objects_removed"] >= 1 and not (root / key).exists()
    left = sql(test_env, "SELECT COUNT(*) FROM video WHERE storage_uri = :k", k=key)[0][0]
    assert left == 0
    assert sweep_once(settings)["objects_removed"] == 0  # idempotent


def test_one_janitor_at_a_time(test_env, tmp_path):
    settings = settings_for(test_env, tmp_path)

    async def run():
        ctx = build_context(settings)
        try:
            lock = LeaseLock(ctx.redis, settings.redis_prefix + "lock:janitor", 5000)
            assert await lock.acquire()
            assert await run_guarded(ctx) is None  # someone else holds it: skipped
            await lock.release()
            assert await run_guarded(ctx) is not None
        finally:
            await close_context(ctx)

    sweep_once(settings)


def test_unregistered_posted_objects_expire(test_env, tmp_path):
    settings = settings_for(test_env, tmp_path, VASSET_UPLOAD_TTL="3600")
    root = Path(test_env["VASSET_STORAGE_URL"][len("file://") :]) / "objects"
    old_key = root / "direct" / "1" / os.urandom(4).hex() / "source"
    new_key = root / "direct" / "1" / os.urandom(4).hex() / "source"
    for path in (old_key, new_key):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"posted")
    past = time.time() - 7200
    os.utime(old_key, (past, past))

    assert sweep_once(settings)["posted_removed"] >= 1
    assert not old_key.exists() and new_key.exists()


def test_template_options_of_uploads_that_never_completed_go(test_env, tmp_path, app_creds):
    settings = settings_for(test_env, tmp_path)
    now = int(time.time())
    vids = {}
    for status in ("uploading", "upload_failed"):
        sql(
            test_env,
            "INSERT INTO video (app_id, source_name, create_time, update_time, status)"
            " VALUES (:a, 'o', :t, :t, :s)",
            a=app_creds["id"],
            t=now,
            s=status,
        )
        vids[status] = sql(test_env, "SELECT MAX(id) FROM video")[0][0]
    gone_vid = vids["upload_failed"] + 10**9  # a video row that no longer exists
    rows = [(vids["uploading"], now - 7200), (vids["upload_failed"], now - 7200)]
    rows += [(gone_vid, now - 7200), (vids["upload_failed"] + 10**9 + 1, now)]
    for vid, created in rows:
        sql(
            test_env,
            "INSERT INTO video_transcode_options (video_id, options, create_time)"
            " VALUES (:v, '{}', :t)",
            v=vid,
            t=created,
        )
    report = sweep_once(settings)
    assert report["options_removed"] >= 2
    left = {
        r[0]
        for r in sql(
            test_env,
            "SELECT video_id FROM video_transcode_options WHERE video_id IN :vs",
            vs=tuple(v for v, _ in rows),
        )
    }
    # the upload still in progress keeps its options; an hour-young row stays too
    assert left == {vids["uploading"], vids["upload_failed"] + 10**9 + 1}


def test_abandoned_replacements_lose_their_bytes(test_env, tmp_path, app_creds):
    """A replacement the reaper failed (state abandoned) has its new source removed."""
    settings = settings_for(test_env, tmp_path)
    root = Path(test_env["VASSET_STORAGE_URL"][len("file://") :]) / "objects"
    key = f"sources/1/998/{os.urandom(4).hex()}/source"
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(b"new source")
    now = int(time.time())
    sql(
        test_env,
        "INSERT INTO video (app_id, source_name, create_time, update_time, status)"
        " VALUES (:a, 'r', :t, :t, 'transcode_failed')",
        a=app_creds["id"],
        t=now,
    )
    vid = sql(test_env, "SELECT MAX(id) FROM video")[0][0]
    sql(
        test_env,
        "INSERT INTO source_replacement (video_id, app_id, upload_pk, storage_key, state,"
        " create_time, update_time) VALUES (:v, :a, :u, :k, 'abandoned', :t, :t)",
        v=vid,
        a=app_creds["id"],
        u=10**12 + vid,
        k=key,
        t=now,
    )
    report = sweep_once(settings)
    assert report["replacements_removed"] >= 1
    assert not (root / key).exists()
    assert (
        sql(test_env, "SELECT COUNT(*) FROM source_replacement WHERE video_id = :v", v=vid)[0][0]
        == 0
    )


def test_asset_objects_without_a_live_row_go_once_an_hour_old(test_env, tmp_path, app_creds):
    settings = settings_for(test_env, tmp_path)
    root = Path(test_env["VASSET_STORAGE_URL"][len("file://") :]) / "objects"
    app = app_creds["id"]
    names = {n: f"assets/{app}/{os.urandom(8).hex()}.png" for n in ("live", "old", "young")}
    for key in names.values():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"png")
    hour_ago = time.time() - 7200
    for name in ("live", "old"):
        os.utime(root / names[name], (hour_ago, hour_ago))
    sql(
        test_env,
        "INSERT INTO app_asset (app_id, kind, storage_key, width, height, size, md5,"
        " create_time) VALUES (:a, 'watermark', :k, 1, 1, 3, :m, :t)",
        a=app,
        k=names["live"],
        m="0" * 32,
        t=int(hour_ago),
    )
    report = sweep_once(settings)
    assert report["assets_removed"] >= 1
    # a live asset stays, an orphan goes, a young one may still be waiting for its row
    assert (root / names["live"]).exists() and (root / names["young"]).exists()
    assert not (root / names["old"]).exists()
