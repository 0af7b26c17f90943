"""Shared fixtures: a private database and Redis prefix per xdist worker, real servers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import Api
from tests.support.db import drop_database
from tests.support.server import ROOT, ServerProcess

pytest_plugins = ["tests.oss_server.pytest_plugin"]

MYSQL_BASE = os.environ.get("VASSET_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("VASSET_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _worker_tag() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw") + secrets.token_hex(3)


@pytest.fixture(scope="session")
def test_env(tmp_path_factory) -> dict[str, str]:
    """VASSET_* variables for this test worker: own database, Redis prefix and storage."""
    tag = _worker_tag()
    root = tmp_path_factory.mktemp("vasset")
    env = {
        "VASSET_DATABASE_URL": f"{MYSQL_BASE}/vasset_test_{tag}",
        "VASSET_REDIS_URL": REDIS_URL,
        "VASSET_REDIS_PREFIX": f"vtest:{tag}:",
        "VASSET_STORAGE_URL": f"file://{root / 'storage'}",
        "VASSET_TEMP_DIR": str(root / "tmp"),
        "VASSET_LOG_LEVEL": "info",
    }
    subprocess.run(
        [sys.executable, "-m", "vasset", "db", "upgrade"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    yield env
    drop_database(env["VASSET_DATABASE_URL"])


@pytest.fixture(scope="session")
def test_settings(test_env):
    """Settings matching test_env."""
    from vasset.settings import load_settings

    return load_settings(test_env)


def create_app(env: dict[str, str], name: str = "test") -> dict:
    """A new app with fresh credentials, via the real CLI."""
    import json

    out = subprocess.run(
        [sys.executable, "-m", "vasset", "apps", "create", name, "--json"],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def server(test_env, tmp_path_factory) -> ServerProcess:
    """One real `vasset serve` for the session."""
    log = tmp_path_factory.mktemp("logs") / "server.log"
    proc = ServerProcess(test_env, log_path=log).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def app_creds(test_env) -> dict:
    """Credentials of the session's main app."""
    return create_app(test_env, "main")


@pytest.fixture(scope="session")
def other_creds(test_env) -> dict:
    """Credentials of a second app, for isolation tests."""
    return create_app(test_env, "other")


@pytest.fixture
def api(server, app_creds) -> Api:
    """A signing client of the main app."""
    return Api(server.url, app_creds["app_key"], app_creds["app_secret"])


@pytest.fixture
def other_api(server, other_creds) -> Api:
    """A signing client of the other app."""
    return Api(server.url, other_creds["app_key"], other_creds["app_secret"])


@pytest.fixture(scope="session")
def root_dir() -> Path:
    """The repository root."""
    return ROOT
