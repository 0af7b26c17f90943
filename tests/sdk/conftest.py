"""Fixtures of the SDK tests: SDK clients of the session's real server, a fault proxy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from vasset_client import Client, errors

from tests.sdk.proxy import FaultProxy


def make_client(url: str, creds: dict, **kw) -> Client:
    """An SDK client with quick retries (tests must stay fast)."""
    kw.setdefault("retries", 3)
    kw.setdefault("backoff", 0.02)
    kw.setdefault("timeout", 30)
    return Client(url, creds["app_key"], creds["app_secret"], **kw)


@pytest.fixture
def client(server, app_creds) -> Iterator[Client]:
    """An SDK client of the main app."""
    with make_client(server.url, app_creds) as c:
        yield c


@pytest.fixture
def other_client(server, other_creds) -> Iterator[Client]:
    """An SDK client of the other app."""
    with make_client(server.url, other_creds) as c:
        yield c


@pytest.fixture
def proxy(server) -> Iterator[FaultProxy]:
    """A recording proxy in front of the server."""
    p = FaultProxy(server.url).start()
    yield p
    p.close()


@pytest.fixture
def state_dir(tmp_path) -> Path:
    """A private uploader state directory."""
    d = tmp_path / "state"
    d.mkdir()
    return d


def random_file(path: Path, size: int) -> Path:
    """A file of random bytes."""
    path.write_bytes(os.urandom(size))
    return path


def route_missing(client: Client, method: str, path: str) -> bool:
    """True when the server has no such route (404 with code NotFound, not VideoNotFound)."""
    try:
        client.request(method, path, {"vid": 2_000_000_000})
    except errors.VassetError as exc:
        return exc.status == 404 and exc.code == "NotFound"
    return False


def skip_unless_route(client: Client, method: str, path: str) -> None:
    """Skip the calling test while the server does not implement method path."""
    if route_missing(client, method, path):
        pytest.skip(f"the server has no {method} {path} yet")
