"""Helpers the end-to-end media tests share: upload, wait until playable, error answers, OSS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.oss_server.pytest_plugin import OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET
from tests.support.api import Api
from tests.support.workers import Stack


def upload_answer(api: Api, path: Path, **extra: object) -> dict:
    """Upload a file in one part (at least 100 KiB); returns the answer, asserted uploaded."""
    data = path.read_bytes()
    done = api.upload(path.name, data, max(len(data), 100 * 1024), **extra)
    assert done["status"] == "uploaded", done
    return done


def upload(api: Api, path: Path, **extra: object) -> int:
    """Upload a file in one part (at least 100 KiB); returns its vid."""
    return upload_answer(api, path, **extra)["vid"]


def wait_playable(api: Api, vid: int, timeout: float = 90) -> None:
    """Poll the status until playable with its whole ladder; fail on transcode_failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = api.call("GET", "/video/status", {"vid": vid}).json()
        if now["status"] == "playable" and now.get("ladder", "complete") == "complete":
            return
        assert now["status"] != "transcode_failed", now
        time.sleep(0.1)
    raise AssertionError(f"video {vid} not playable after {timeout}s")


def error_of(response: httpx.Response, status: int, code: str) -> dict:
    """Assert an error answer's HTTP status and code; returns its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def oss_env(endpoint: str, prefix: str = "vasset") -> dict[str, str]:
    """The settings that put a deployment's storage on the OSS test server at endpoint."""
    return {
        "VASSET_STORAGE_URL": f"oss://{OSS_BUCKET}/{prefix}",
        "VASSET_OSS_ENDPOINT": endpoint,
        "VASSET_OSS_BUCKET": OSS_BUCKET,
        "VASSET_OSS_ACCESS_KEY_ID": OSS_ACCESS_KEY_ID,
        "VASSET_OSS_ACCESS_KEY_SECRET": OSS_ACCESS_KEY_SECRET,
    }


def oss_stack(
    test_env: dict[str, str], root: Path, name: str, endpoint: str, **extra: str
) -> Iterator[Stack]:
    """A started Stack stored on the OSS test server, stopped after; `yield from` it."""
    stack = Stack(test_env, root, name, **oss_env(endpoint), **extra).start()
    yield stack
    stack.stop()
