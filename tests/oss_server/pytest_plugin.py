"""Pytest fixtures for the OSS test server.

Use from a conftest with ``pytest_plugins = ["tests.oss_server.pytest_plugin"]``, or import the
fixtures into a test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from .server import OssServer

OSS_ACCESS_KEY_ID = "test-access-key-id"
OSS_ACCESS_KEY_SECRET = "test-access-key-secret"
OSS_BUCKET = "vasset-test"
OSS_REGION = "cn-hangzhou"


@pytest.fixture
def oss_server(tmp_path: Path) -> Iterator[OssServer]:
    """A started OSS server on 127.0.0.1 and a random port, its bodies under tmp_path."""
    data_dir = tmp_path / "oss-data"
    data_dir.mkdir()
    server = OssServer(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET, data_dir=data_dir)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def oss_bucket(oss_server: OssServer) -> oss2.Bucket:
    """An oss2 Bucket (V1 signatures) pointed at ``oss_server``."""
    auth = oss2.Auth(OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET)
    return oss2.Bucket(auth, oss_server.endpoint, OSS_BUCKET, connect_timeout=5)
