"""GET /video/list over a real socket: paging, filters, isolation, bad input."""

from __future__ import annotations

import os

import pytest

from tests.conftest import create_app
from tests.support.api import Api


@pytest.fixture(scope="module")
def lister(server, test_env) -> Api:
    """A client of an app of its own, so other tests' videos do not show up."""
    creds = create_app(test_env, "lister")
    return Api(server.url, creds["app_key"], creds["app_secret"])


def _list(api: Api, **params) -> dict:
    r = api.call("GET", "/video/list", params)
    assert r.status_code == 200, r.text
    return r.json()


def _error(api: Api, params: dict, parameter: str) -> None:
    r = api.call("GET", "/video/list", params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameter" and body["parameter"] == parameter, body


def test_pages_newest_first_with_filters_and_isolation(lister, other_api):
    started = [lister.init(f"clip{i}.mp4", os.urandom(1000), 1000).json() for i in range(4)]
    assert all(s["status"] == "uploading" for s in started)
    data = os.urandom(2000)
    done = lister.upload("done.mp4", data, 2000)
    gone = lister.upload("gone.mp4", os.urandom(500), 500)
    assert lister.call("POST", "/video/delete", {"vid": gone["vid"]}).status_code == 200
    expected = sorted([s["vid"] for s in started] + [done["vid"]], reverse=True)

    seen, cursor, pages = [], None, 0
    while True:
        page = _list(lister, limit=2, **({"cursor": cursor} if cursor else {}))
        pages += 1
        assert len(page["videos"]) <= 2
        seen += page["videos"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [v["vid"] for v in seen] == expected and pages == 3
    first = next(v for v in seen if v["vid"] == done["vid"])
    assert first == {
        "vid": done["vid"],
        "source_name": "done.mp4",
        "status": "uploaded",
        "playable": False,
        "duration": None,
        "file_size": 2000,
        "create_time": first["create_time"],
    }
    assert isinstance(first["create_time"], int) and first["create_time"] > 1_700_000_000

    uploaded = _list(lister, status="uploaded")
    assert [v["vid"] for v in uploaded["videos"]] == [done["vid"]]
    assert uploaded["next_cursor"] is None
    assert len(_list(lister, status="uploading")["videos"]) == 4

    # Another app never sees these, even with this app's cursor.
    theirs = _list(other_api, limit=100)
    assert not {v["vid"] for v in theirs["videos"]} & set(expected)
    page = _list(lister, limit=1)
    assert not {v["vid"] for v in _list(other_api, cursor=page["next_cursor"])["videos"]} & set(
        expected
    )


def test_bad_parameters_are_invalid_parameter(lister):
    _error(lister, {"limit": 0}, "limit")
    _error(lister, {"limit": 101}, "limit")
    _error(lister, {"limit": "x"}, "limit")
    _error(lister, {"status": "deleted"}, "status")
    _error(lister, {"cursor": "garbage!"}, "cursor")
    _error(lister, {"cursor": "djE6LTE"}, "cursor")  # "v1:-1"
    assert lister.call("GET", "/video/list", {"app_key": "nope"}).status_code == 401
