"""A part re-sent after its upload completed (the answer was lost): idempotent completion."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.support.api import Api
from tests.support.db import sql

PSIZE = 100 * 1024


def _complete(api: Api, data: bytes, with_hash: bool) -> dict:
    r = api.init("resend.mp4", data, PSIZE)
    assert r.status_code == 200, r.text
    init = r.json()
    answer: dict = {}
    for i in range(init["part_count"]):
        part = data[i * PSIZE : (i + 1) * PSIZE]
        r = api.put_part(init["upload_id"], i + 1, part, with_hash=with_hash)
        assert r.status_code == 200, r.text
        answer = r.json()
    assert answer["status"] == "uploaded"
    return {**init, **answer}


@pytest.mark.parametrize("with_hash", [True, False], ids=["part-md5", "no-part-md5"])
def test_a_resent_part_gets_the_completion_answer_again(api, test_env, with_hash):
    data = os.urandom(PSIZE * 2 + 777)
    done = _complete(api, data, with_hash)
    expected = {
        "upload_id": done["upload_id"],
        "vid": done["vid"],
        "status": "uploaded",
        "md5": hashlib.md5(data).hexdigest(),
        "size": len(data),
    }
    videos_before = sql(test_env, "SELECT COUNT(*) FROM video")[0][0]
    for pseq in (1, 2, 3):
        part = data[(pseq - 1) * PSIZE : pseq * PSIZE]
        for hashed in (True, False):
            r = api.put_part(done["upload_id"], pseq, part, with_hash=hashed)
            assert r.status_code == 200, r.text
            assert {k: r.json()[k] for k in expected} == expected
        # An upload token (the browser's credential) gets the same answer.
        r = api.http.put(
            f"{api.base_url}/video/upload/upload",
            params={"upid": done["upload_id"], "pseq": pseq, "token": done["upload_token"]},
            content=part,
        )
        assert r.status_code == 200 and r.json()["vid"] == done["vid"], r.text
    assert sql(test_env, "SELECT COUNT(*) FROM video")[0][0] == videos_before


def test_a_different_part_after_completion_is_upload_completed(api):
    data = os.urandom(PSIZE * 2)
    done = _complete(api, data, with_hash=False)
    other = os.urandom(PSIZE)
    r = api.put_part(done["upload_id"], 2, other)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "UploadCompleted" and r.json()["vid"] == done["vid"]
    # A body that contradicts its own hash is still InvalidDigest, not a completion answer.
    r = api.put_part(done["upload_id"], 1, data[:PSIZE], hash=hashlib.md5(other).hexdigest())
    assert r.status_code == 400 and r.json()["code"] == "InvalidDigest", r.text
    # The stored video is untouched.
    r = api.call("GET", "/video/mediainfo", {"vid": done["vid"]})
    assert r.json()["md5"] == hashlib.md5(data).hexdigest()
