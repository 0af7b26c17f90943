"""Client behaviour without a server: error mapping, retries, re-signing, wait()."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from vasset_client import Client, errors
from vasset_client.cli import parse_size
from vasset_client.models import Limits
from vasset_client.signing import sign


def err(status: int, code: str, headers: dict | None = None, **extra) -> httpx.Response:
    body = {"code": code, "message": f"{code} happened", "request_id": "rid-1", **extra}
    return httpx.Response(status, json=body, headers=headers or {})


class Script:
    """A MockTransport handler answering from a list and recording requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def params(self, i: int) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(str(self.requests[i].url)).query).items()}


def scripted(*answers, retries: int = 3) -> tuple[Client, Script, list[float]]:
    script = Script(*answers)
    c = Client(
        "http://vasset.test/base/",
        "ak",
        "sk",
        retries=retries,
        transport=httpx.MockTransport(script),
    )
    sleeps: list[float] = []
    c.sleep = sleeps.append
    return c, script, sleeps


def test_requests_are_signed_over_the_full_path():
    c, script, _ = scripted(httpx.Response(200, json={"vid": 7, "status": "uploaded"}))
    assert c.status(7).status == "uploaded"
    req = script.requests[0]
    assert req.url.path == "/base/video/status"
    params = script.params(0)
    assert params["signature"] == sign("sk", "GET", "/base/video/status", params)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "SignatureDoesNotMatch", errors.SignatureDoesNotMatch),
        (404, "VideoNotFound", errors.VideoNotFound),
        (404, "UploadNotFound", errors.UploadNotFound),
        (404, "NotFound", errors.NotFound),
        (409, "UploadCompleted", errors.UploadCompleted),
        (422, "HashMismatch", errors.HashMismatch),
        (400, "SomethingNew", errors.BadRequest),
        (409, "SomethingNew", errors.Conflict),
        (418, "Teapot", errors.ClientError),
        (502, "BadGateway", errors.ServerError),
    ],
)
def test_error_codes_map_to_classes(status, code, cls):
    c, _, _ = scripted(err(status, code, vid=5), retries=0)
    with pytest.raises(cls) as info:
        c.status(1)
    e = info.value
    assert type(e) is cls and isinstance(e, errors.VassetError)
    assert (e.code, e.status, e.request_id) == (code, status, "rid-1")
    assert e.body["vid"] == 5


def test_retries_5xx_and_network_errors_with_fresh_signatures():
    c, script, sleeps = scripted(
        err(500, "InternalError"),
        httpx.ConnectError("refused"),
        err(503, "ServiceUnavailable"),
        httpx.Response(200, json={"vid": 1, "status": "uploaded"}),
    )
    assert c.status(1).vid == 1
    assert len(script.requests) == 4 and len(sleeps) == 3
    randoms = {script.params(i)["random"] for i in range(4)}
    assert len(randoms) == 4
    # full jitter: each pause lies within the exponential cap
    for attempt, pause in enumerate(sleeps):
        assert 0 <= pause <= c.backoff * 2**attempt


def test_retry_after_is_honoured_for_429_and_503():
    c, _, sleeps = scripted(
        err(429, "Throttled", {"Retry-After": "3"}),
        err(503, "ServiceUnavailable", {"Retry-After": "2"}),
        httpx.Response(200, json={"vid": 1, "status": "uploaded"}),
    )
    c.status(1)
    assert sleeps == [3.0, 2.0]


def test_gives_up_after_retries_with_typed_errors():
    c, script, _ = scripted(*[err(503, "ServiceUnavailable", {"Retry-After": "1"})] * 3, retries=2)
    with pytest.raises(errors.ServiceUnavailable) as info:
        c.status(1)
    assert info.value.retry_after == 1.0 and len(script.requests) == 3
    c, _, _ = scripted(*[httpx.ReadTimeout("slow")] * 2, retries=1)
    with pytest.raises(errors.NetworkError):
        c.status(1)


def test_client_errors_are_not_retried():
    c, script, sleeps = scripted(err(401, "SignatureDoesNotMatch"))
    with pytest.raises(errors.SignatureDoesNotMatch):
        c.limits()
    assert len(script.requests) == 1 and sleeps == []


def test_clock_skew_is_learnt_from_signature_expired():
    c, script, sleeps = scripted(
        err(401, "SignatureExpired", server_time=2_000_000_000),
        httpx.Response(200, json={"max_part_count": 10000}),
    )
    assert isinstance(c.limits(), Limits)
    assert sleeps == []
    assert abs(int(script.params(1)["timestamp"]) - 2_000_000_000) <= 2


def test_streamed_part_bodies_are_recreated_per_attempt():
    c, script, _ = scripted(
        httpx.ConnectError("reset"),
        httpx.Response(200, json={"upload_id": "u", "pseq": 1, "received": 1, "part_count": 2}),
    )
    calls = []

    def body():
        calls.append(1)
        yield b"abc"
        yield b"def"

    r = c.upload_part("u", 1, body, hash="e80b5017098950fc58aad83c8c14978e", size=6)
    assert r.received == 1 and not r.completed and len(calls) == 2
    assert script.requests[1].content == b"abcdef"
    assert script.requests[1].headers["content-length"] == "6"


def status_answer(status: str, playable: bool = False, error: str | None = None):
    return httpx.Response(
        200, json={"vid": 3, "status": status, "playable": playable, "progress": 0, "error": error}
    )


def test_wait_polls_until_playable():
    c, script, _ = scripted(
        status_answer("uploaded"),
        status_answer("transcoding"),
        status_answer("transcoding", playable=True),
    )
    assert c.wait(3, timeout=10).playable is True
    assert len(script.requests) == 3


def test_wait_raises_on_failures_and_timeout():
    c, _, _ = scripted(status_answer("transcode_failed", error="probe failed"))
    with pytest.raises(errors.TranscodeFailed):
        c.wait(3)
    c, _, _ = scripted(status_answer("upload_failed", error="HashMismatch"))
    with pytest.raises(errors.UploadFailed):
        c.wait(3, until="uploaded")
    c, _, _ = scripted(status_answer("transcode_failed"))
    assert c.wait(3, until="uploaded").status == "transcode_failed"
    c, _, _ = scripted(status_answer("uploaded"))
    with pytest.raises(errors.WaitTimeout):
        c.wait(3, timeout=0)


def test_limits_choose_part_size():
    lim = Limits(max_file_size=1 << 40, min_part_size=100 << 10, max_part_size=5 << 30)
    assert lim.choose_part_size(10 << 20) == 8 << 20
    assert lim.choose_part_size(10 << 20, 1) == 100 << 10
    assert lim.choose_part_size(1 << 40) == -(-(1 << 40) // 10_000)
    assert lim.choose_part_size(10 << 30, 10 << 30) == 5 << 30


def test_cli_sizes():
    assert parse_size("100K") == 102400
    assert parse_size("8MiB") == 8 << 20
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("12345") == 12345


def test_error_to_dict_is_json():
    e = errors.from_response(409, {"code": "VideoNotPlayable", "message": "m"}, {})
    assert json.loads(json.dumps(e.to_dict()))["code"] == "VideoNotPlayable"
