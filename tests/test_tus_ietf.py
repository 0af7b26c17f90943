"""The IETF resumable-upload drafts 3, 5 and 6 on vasset's /files/, over raw HTTP."""

from __future__ import annotations

import os

import pytest

from tests.support.tus import (
    GONE,
    OCTETS,
    PROBLEM,
    Tus,
    assert_completed,
    error,
    get_ticket,
    max_size,
    metadata,
    path_of,
    send,
)


def flag(version: int, complete: bool) -> dict[str, str]:
    """The draft's completeness header (v3 says it the other way round)."""
    if version == 3:
        return {"Upload-Incomplete": "?0" if complete else "?1"}
    return {"Upload-Complete": "?1" if complete else "?0"}


def patch_type(version: int) -> str:
    """The PATCH content type: v6's own, and one any earlier draft must accept."""
    return "application/partial-upload" if version >= 6 else "application/octet-stream"


@pytest.fixture(params=[3, 5, 6])
def ietf(request, server, api) -> Tus:
    """A draft client (version in .ietf) with a ticket of its own."""
    return Tus(server.port, get_ticket(api, uses=100), ietf=request.param)


def test_ietf_incomplete_creation_then_patch(api, ietf):
    v = ietf.ietf or 0
    data = os.urandom(250_003)
    first = {3: 100_000, 5: 0, 6: 77_777}[v]
    sized = {"Upload-Length": str(len(data))} if v == 6 else {}
    created = ietf.request(
        "POST", "/files/", {**flag(v, False), **sized, "Content-Type": OCTETS}, data[:first]
    )
    assert created.status == 201, str(created)
    assert created.int_header("Upload-Offset") == first and created.int_header("Vasset-Vid")
    assert created.header("Upload-Draft-Interop-Version") == str(v)
    assert {created.header(k) for k in flag(v, False)} == set(flag(v, False).values())
    path = path_of(created.header("Location") or "")
    head = ietf.head(path)
    assert head.status == 204 and head.int_header("Upload-Offset") == first, str(head)
    assert {head.header(k) for k in flag(v, False)} == set(flag(v, False).values())
    assert "no-store" in (head.header("Cache-Control") or "")
    if v == 6:
        assert head.int_header("Upload-Length") == len(data)
    more = {"Upload-Offset": str(first), "Content-Type": patch_type(v), **flag(v, True)}
    done = ietf.request("PATCH", path, more, data[first:])
    assert done.status == 204 and done.int_header("Upload-Offset") == len(data), str(done)
    assert {done.header(k) for k in flag(v, True)} == set(flag(v, True).values())
    assert_completed(api, ietf, path, data)
    assert ietf.head(path).int_header("Upload-Length") == len(data)


def test_ietf_complete_in_one_request(api, ietf):
    v = ietf.ietf or 0
    data = os.urandom(180_001)
    # Upload-Metadata is tus's, but a draft client may send it too: the name is worth keeping.
    more = {**flag(v, True), "Content-Type": OCTETS, "Upload-Metadata": metadata(filename="a.mov")}
    created = ietf.request("POST", "/files/", more, data)
    assert created.status == 201 and created.int_header("Upload-Offset") == len(data)
    assert {created.header(k) for k in flag(v, True)} == set(flag(v, True).values())
    assert created.int_header("Vasset-Vid")
    info = assert_completed(api, ietf, path_of(created.header("Location") or ""), data)
    media = api.call("GET", "/video/mediainfo", {"vid": info["vid"]}).json()
    assert media["source_name"] == "a.mov"


def test_ietf_delete(ietf):
    v = ietf.ietf or 0
    created = ietf.request("POST", "/files/", {**flag(v, False), "Content-Type": OCTETS}, b"abc")
    path = path_of(created.header("Location") or "")
    assert ietf.request("DELETE", path).status == 204
    assert ietf.head(path).status in GONE


def test_ietf_options_upload_limit(server):
    answer = send(server.port, "OPTIONS", "/files/", {"Upload-Draft-Interop-Version": "6"})
    assert answer.status == 204, str(answer)
    limits = dict(p.strip().split("=", 1) for p in (answer.header("Upload-Limit") or "").split(","))
    assert int(limits["max-size"]) == max_size(server.port)


def test_ietf_problem_details(server, api):
    ietf = Tus(server.port, get_ticket(api, uses=10), ietf=6)
    data = os.urandom(5000)
    start = {**flag(6, False), "Upload-Length": "5000", "Content-Type": OCTETS}
    path = path_of(ietf.request("POST", "/files/", start, data[:1000]).header("Location") or "")
    ctype = {"Content-Type": patch_type(6)}

    def problem(answer, status: int, kind: str, code: str) -> dict:
        assert (answer.header("Content-Type") or "").startswith("application/problem+json")
        body = error(answer, status, code)
        assert body["type"] == PROBLEM + kind and body["status"] == status
        assert body["title"] and body["detail"]
        return body

    wrong = ietf.request("PATCH", path, {**ctype, **flag(6, False), "Upload-Offset": "10"}, b"x")
    body = problem(wrong, 409, "mismatching-upload-offset", "OffsetMismatch")
    assert (body["expected-offset"], body["provided-offset"]) == (1000, 10)
    longer = {**ctype, **flag(6, False), "Upload-Offset": "1000", "Upload-Length": "6000"}
    problem(
        ietf.request("PATCH", path, longer, data[1000:2000]),
        400,
        "inconsistent-upload-length",
        "InconsistentLength",
    )
    rest = {**ctype, **flag(6, True), "Upload-Offset": "1000"}
    assert ietf.request("PATCH", path, rest, data[1000:]).status == 204
    again = {**ctype, **flag(6, True), "Upload-Offset": "5000"}
    problem(ietf.request("PATCH", path, again, b"x"), 409, "completed-upload", "UploadCompleted")
    short = {**flag(6, True), "Upload-Length": "10", "Content-Type": OCTETS}
    problem(
        ietf.request("POST", "/files/", short, b"12345"),
        400,
        "inconsistent-upload-length",
        "InconsistentLength",
    )
