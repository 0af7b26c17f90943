"""Direct-to-OSS uploads through the SDK: a real `vasset serve` storing in the OSS test server."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator

import pytest
from vasset_client import Client, Uploader

from tests.sdk.conftest import make_client, random_file, skip_unless_route
from tests.test_oss_uploads import _oss_healthy, metric, oss, oss_creds, oss_env, oss_service

__all__ = ["_oss_healthy", "oss", "oss_creds", "oss_env", "oss_service"]  # fixtures

KIB = 1024
PSIZE = 100 * KIB
RECEIVED = "vasset_upload_bytes_received_total"


@pytest.fixture
def oss_client(oss_service, oss_creds) -> Iterator[Client]:
    """An SDK client of the OSS-backed service (skips while it has no direct uploads)."""
    with make_client(oss_service.url, oss_creds) as c:
        skip_unless_route(c, "GET", "/video/upload/direct/urls")
        yield c


def test_direct_upload_with_storage_faults_then_instant(
    oss_client, oss, oss_service, tmp_path, state_dir
):
    f = random_file(tmp_path / "direct.mp4", 5 * PSIZE + 77)
    md5 = hashlib.md5(f.read_bytes()).hexdigest()
    received = metric(oss_service.url, RECEIVED)
    uploads_before = len(oss.ops("UploadPart"))
    # an expired URL (403) is refreshed through the API; a 503 and a dropped body are retried
    oss.fail_next("UploadPart", status=403, code="AccessDenied", message="Request has expired.")
    oss.fail_next("UploadPart", status=503)
    oss.fail_next("UploadPart", drop=True, after_bytes=1000)
    refreshed: list = []
    fetch = oss_client.direct_part_urls
    oss_client.direct_part_urls = lambda upid, pseqs=None: (
        refreshed.append(pseqs) or fetch(upid, pseqs)
    )
    seen: list[int] = []
    result = Uploader(
        oss_client,
        f,
        part_size=PSIZE,
        parallel=3,
        state_dir=state_dir,
        direct=True,
        on_progress=lambda d, t: seen.append(d),
    ).run()
    assert result.md5 == md5 and result.parts_sent == 6 and not result.instant
    assert seen == sorted(seen) and seen[-1] == f.stat().st_size
    assert metric(oss_service.url, RECEIVED) == received  # no byte went through the API
    assert len(oss.ops("UploadPart")) - uploads_before == 6 + 3
    assert len(refreshed) == 1 and len(refreshed[0]) == 1  # one URL, fetched again after 403
    assert oss_client.mediainfo(result.vid).md5 == md5
    assert list(state_dir.iterdir()) == []
    again = Uploader(oss_client, f, state_dir=state_dir, direct=True).run()
    assert again.instant and again.vid != result.vid


def test_direct_upload_resumes_after_a_crash(oss_client, oss, tmp_path, state_dir):
    f = random_file(tmp_path / "direct-crash.mp4", 8 * PSIZE)
    lock = threading.Lock()

    def crash(done: int, total: int) -> None:
        with lock:
            if done >= total // 2:
                raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        Uploader(
            oss_client, f, part_size=PSIZE, parallel=1, state_dir=state_dir, direct=True,
            on_progress=crash,
        ).run()  # fmt: skip
    [state] = list(state_dir.iterdir())
    assert '"direct": true' in state.read_text()
    missing = oss_client.resume(json.loads(state.read_text())["upload_id"]).missing
    assert 0 < len(missing) < 8
    time.sleep(0.3)  # the in-process OSS server may still be reading the request cut short
    before = len(oss.ops("UploadPart"))
    result = Uploader(oss_client, f, part_size=PSIZE, state_dir=state_dir, direct=True).run()
    assert result.resumed and result.md5 == hashlib.md5(f.read_bytes()).hexdigest()
    assert result.parts_sent == len(missing) == len(oss.ops("UploadPart")) - before
    assert list(state_dir.iterdir()) == []
