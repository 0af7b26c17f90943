"""Upload tickets and signed creation at /files/: every misuse, and what a ticket carries."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from tests.support.server import ROOT
from tests.support.tus import (
    TUS,
    Tus,
    assert_completed,
    error,
    get_ticket,
    max_size,
    metadata,
    path_of,
    send,
)

METHODS = ("HEAD", "PATCH", "DELETE", "GET")


def refused(tus: Tus, path: str, status: int, code: str) -> None:
    """Every request on path answers status (and code, where there is a body)."""
    for method in METHODS:
        more = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        answer = tus.request(method, path, more, b"x" if method == "PATCH" else b"")
        if method == "HEAD":
            assert answer.status == status, str(answer)
        else:
            error(answer, status, code)


def test_ticket_answer_and_expiry_cap(api):
    now = time.time()
    answer = api.call("POST", "/video/upload/ticket", {"expires": 600, "uses": 3}).json()
    assert answer["ticket"].startswith("vt_") and answer["endpoint"] == "/files/"
    assert now + 600 - 5 <= answer["expires_at"] <= now + 600 + 5
    default = api.call("POST", "/video/upload/ticket").json()
    assert now + 3600 - 5 <= default["expires_at"] <= now + 3600 + 5
    capped = api.call("POST", "/video/upload/ticket", {"expires": 10**7}).json()
    assert capped["expires_at"] <= now + 86400 + 5  # VASSET_TICKET_MAX_TTL


@pytest.mark.parametrize("uses", ["0", "1001", "x", "-1"])
def test_ticket_uses_out_of_range_is_400(api, uses):
    answer = api.call("POST", "/video/upload/ticket", {"uses": uses})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "InvalidParameter" and answer.json()["parameter"] == "uses"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer garbage", "Bearer vt_" + "A" * 43, "Basic dXNlcjpw"],
)
def test_no_or_garbage_ticket_is_401(server, api, authorization):
    good = Tus(server.port, get_ticket(api))
    path = good.new(10)
    bad = Tus(server.port)
    more = {} if authorization is None else {"Authorization": authorization}
    created = send(server.port, "POST", "/files/", {**TUS, "Upload-Length": "10", **more})
    error(created, 401, "InvalidTicket")
    for method in METHODS:
        answer = bad.request(method, path, {**more, "Upload-Offset": "0"})
        assert answer.status == 401, str(answer)
        if method != "HEAD":
            assert answer.json()["code"] == "InvalidTicket", str(answer)
    assert good.offset(path) == 0


def test_ticket_without_bearer_scheme_is_401(server, api):
    ticket = get_ticket(api)
    headers = {**TUS, "Upload-Length": "10", "Authorization": ticket}
    error(send(server.port, "POST", "/files/", headers), 401, "InvalidTicket")


def test_expired_ticket_creates_nothing_but_its_uploads_go_on(api, server):
    tus = Tus(server.port, get_ticket(api, expires=1, uses=5))
    path = tus.new(10, b"01234")
    time.sleep(2.2)
    error(tus.create(10), 401, "TicketExpired")
    # No other ticket can reach the upload, so the one that made it must still resume it.
    assert tus.offset(path) == 5
    assert_completed(api, tus, path, b"0123456789", tus.patch(path, 5, b"56789"))


def test_ticket_max_size_is_413(server, api):
    tus = Tus(server.port, get_ticket(api, max_size=1000, uses=10))
    error(tus.create(1001), 413, "EntityTooLarge")
    tus.new(1000)
    deferred = tus.new(Upload_Defer_Length="1")
    error(tus.patch(deferred, 0, b"x" * 10, {"Upload-Length": "1001"}), 413, "EntityTooLarge")
    error(tus.patch(deferred, 0, b"x" * 1001), 413, "EntityTooLarge")
    assert tus.offset(deferred) == 0
    # A ticket never raises the server's own limit.
    roomy = Tus(server.port, get_ticket(api, uses=2))
    error(roomy.create(max_size(server.port) + 1), 413, "EntityTooLarge")


def test_ticket_uses_run_out(server, api):
    tus = Tus(server.port, get_ticket(api, uses=2))
    error(tus.create(10, headers={"Upload-Metadata": "x !!!"}), 400, "InvalidHeader")
    tus.new(10)  # the refused creation above did not spend a use
    tus.new(10)
    error(tus.create(10), 403, "TicketUsedUp")


def test_partial_uploads_do_not_spend_uses_the_final_does(server, api):
    tus = Tus(server.port, get_ticket(api, uses=1))
    parts = [tus.new(3, body, Upload_Concat="partial") for body in (b"abc", b"def")]
    final = tus.create(headers={"Upload-Concat": "final;" + " ".join(parts)})
    assert final.status == 201, str(final)
    error(tus.create(6), 403, "TicketUsedUp")
    info = tus.info(path_of(final.header("Location") or ""))
    assert info["status"] == "uploaded" and info["size"] == 6


def test_another_tickets_or_apps_upload_is_404(server, api, other_api):
    mine = Tus(server.port, get_ticket(api, uses=5))
    path = mine.new(10)
    partial = mine.new(3, b"abc", Upload_Concat="partial")
    for ticket in (get_ticket(api, uses=5), get_ticket(other_api, uses=5)):
        stranger = Tus(server.port, ticket)
        refused(stranger, path, 404, "UploadNotFound")
        # Nor may a stranger take another's partial upload into its own final one.
        answer = stranger.create(headers={"Upload-Concat": f"final;{partial}"})
        error(answer, 404, "UploadNotFound")
    assert mine.offset(path) == 0 and mine.info(path)["status"] == "uploading"


@pytest.mark.parametrize(
    "value",
    [
        "filename !!!",
        "filename YQ== extra",
        "filename YQ==,filename Yg==",
        "filename /w==",  # Base64 of a byte that is not UTF-8
        "bad,key with,spaces YQ==",
    ],
)
def test_malformed_metadata_is_400(server, api, value):
    tus = Tus(server.port, get_ticket(api))
    body = error(tus.create(10, headers={"Upload-Metadata": value}), 400, "InvalidHeader")
    assert body["header"] == "Upload-Metadata"


def test_metadata_over_4096_bytes_is_400(server, api):
    tus = Tus(server.port, get_ticket(api, uses=2))
    value = base64.b64encode(b"x" * 3000).decode()  # 4000 characters
    fits, over = "k" * 95 + " " + value, "k" * 96 + " " + value
    assert (len(fits), len(over)) == (4096, 4097)
    error(tus.create(10, headers={"Upload-Metadata": over}), 400, "MetadataTooLarge")
    tus.new(10, Upload_Metadata=fits)


def test_metadata_names_the_video_and_comes_back_in_mediainfo(server, api):
    tus = Tus(server.port, get_ticket(api, uses=3))
    cases = [
        (metadata(filename="holiday clip.mp4", lang="fr", note="été"), "holiday clip.mp4"),
        # TUSKit joins the pairs with ", ".
        (metadata(name="other.mov", filetype="video/quicktime").replace(",", ", "), "other.mov"),
    ]
    for value, name in cases:
        path = tus.new(3, b"abc", Upload_Metadata=value)
        media = api.call("GET", "/video/mediainfo", {"vid": tus.info(path)["vid"]}).json()
        assert media["source_name"] == name
        sent = dict(p.strip().split(" ") for p in value.split(","))
        others = {k: base64.b64decode(v).decode() for k, v in sent.items()}
        for key in ("filename", "name"):
            others.pop(key, None)
        assert media["metadata"] == others


def test_signed_creation_then_the_upload_url_alone(server, api):
    data = os.urandom(150_001)
    url = api.url("POST", "/files/")
    created = send(server.port, "POST", path_of(url), {**TUS, "Upload-Length": str(len(data))})
    assert created.status == 201, str(created)
    path = path_of(created.header("Location") or "")
    browser = Tus(server.port)  # no Authorization: the URL is the capability
    assert browser.offset(path) == 0
    browser.upload(path, data, [100_000])
    assert_completed(api, browser, path, data)

    forged = path_of(api.url("POST", "/files/", signature="0" * 64))
    answer = send(server.port, "POST", forged, {**TUS, "Upload-Length": "10"})
    error(answer, 401, "SignatureDoesNotMatch")
    # A ticket's upload is not open to its URL alone.
    ticketed = Tus(server.port, get_ticket(api)).new(10)
    assert browser.head(ticketed).status == 401


def jobs(server) -> list[dict]:
    """`vasset jobs list --state all --json` on the server's database."""
    out = subprocess.run(
        [sys.executable, "-m", "vasset", "jobs", "list", "--state", "all", "--json"],
        env=server.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def test_auto_ticket_and_signed_auto_queue_a_transcode(server, api):
    plain = Tus(server.port, get_ticket(api))
    auto = Tus(server.port, get_ticket(api, auto=1, priority=7))
    vids = {
        "plain": plain.info(plain.new(3, b"abc"))["vid"],
        "auto": auto.info(auto.new(3, b"def"))["vid"],
    }
    url = path_of(api.url("POST", "/files/", {"auto": 1, "priority": 5}))
    more = {**TUS, "Upload-Length": "3", "Content-Type": "application/offset+octet-stream"}
    signed = send(server.port, "POST", url, more, b"ghi")
    assert signed.status == 201, str(signed)
    vids["signed"] = signed.int_header("Vasset-Vid")
    status = {k: api.call("GET", "/video/status", {"vid": v}).json() for k, v in vids.items()}
    assert status["plain"]["status"] == "uploaded"
    # No worker runs against this server's database: a queued job stays queued.
    assert status["auto"]["status"] == status["signed"]["status"] == "transcode_queued"
    priorities = {j["vid"]: j["priority"] for j in jobs(server)}
    assert vids["plain"] not in priorities
    assert (priorities[vids["auto"]], priorities[vids["signed"]]) == (7, 5)
