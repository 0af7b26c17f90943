"""Attacks on request signing over real sockets: replay, skew, path and parameter confusion."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote_plus

import httpx
import pytest

from tests.support.api import b64name

SIGNING_ERRORS = {"SignatureDoesNotMatch", "SignatureExpired", "InvalidAppKey"}


class RawAnswer:
    """Status, lower-case headers and body of one raw HTTP exchange."""

    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self) -> dict:
        """The body as JSON."""
        import json

        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:200]!r}>"


def raw_http(
    port: int,
    method: str,
    target: str | bytes,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 20,
    half_close: bool = False,
) -> RawAnswer:
    """One request exactly as given (no client-side normalisation), Connection: close."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    head = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if method in ("PUT", "POST") and not any(k.lower() == "content-length" for k in head):
        head["Content-Length"] = str(len(body))
    lines = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in head.items())
    request = method.encode() + b" " + target + b" HTTP/1.1\r\n" + lines + b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if half_close:  # the client says it will send nothing more (a short body ends here)
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return RawAnswer(data)


def enc(value: str) -> str:
    """RFC 3986 encoding of API.md."""
    return quote(value, safe="-_.~")


def sign_raw(api, method: str, path: str, raw_pairs: list[str], **over) -> str:
    """A raw query (pairs as sent) plus the signing parameters and a signature computed the way
    API.md says a server reads it: form-decoded values, re-encoded, sorted."""
    pairs = list(raw_pairs)
    pairs.append(f"app_key={over.get('app_key', api.app_key)}")
    pairs.append(f"timestamp={over.get('timestamp', int(time.time()))}")
    pairs.append(f"random={over.get('random', secrets.token_hex(12))}")
    decoded = []
    for item in pairs:
        name, _, value = item.partition("=")
        decoded.append((enc(unquote_plus(name)), enc(unquote_plus(value))))
    canonical = "&".join(f"{n}={v}" for n, v in sorted(decoded))
    sts = f"{method}\n{over.get('sign_path', path)}\n{canonical}"
    sig = hmac.new(over.get("secret", api.app_secret).encode(), sts.encode(), hashlib.sha256)
    return "&".join(pairs) + "&signature=" + sig.hexdigest()


def error(r, status: int, code: str) -> dict:
    """Assert an error answer and return its body."""
    got = r.status_code if isinstance(r, httpx.Response) else r.status
    assert got == status, r.text if isinstance(r, httpx.Response) else r
    body = r.json()
    assert body["code"] == code, body
    return body


@pytest.fixture
def vid(api) -> int:
    """A video of the main app (still uploading: enough for /video/status)."""
    return api.init("sig.mp4", os.urandom(1000), 1 << 20).json()["vid"]


# ---- replay


def test_replay_of_an_identical_request_is_refused(api, vid):
    url = api.url("GET", "/video/status", {"vid": vid})
    assert httpx.get(url).status_code == 200
    error(httpx.get(url), 401, "SignatureNonceUsed")
    # A correctly signed call that ends in an error still spends its nonce.
    gone = api.url("GET", "/video/status", {"vid": 999_999_998})
    error(httpx.get(gone), 404, "VideoNotFound")
    error(httpx.get(gone), 401, "SignatureNonceUsed")


def test_a_nonce_is_per_app_not_per_path(api, vid):
    nonce = "cross-path-" + secrets.token_hex(8)
    assert api.call("GET", "/video/status", {"vid": vid}, random=nonce).status_code == 200
    r = api.call("GET", "/video/upload/limits", random=nonce)
    error(r, 401, "SignatureNonceUsed")


def test_concurrent_replays_succeed_exactly_once(api, vid):
    url = api.url("GET", "/video/status", {"vid": vid})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.get(url, timeout=20), range(8)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [401] * 7, [r.text for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code == 401} == {"SignatureNonceUsed"}


def test_a_refused_request_does_not_burn_its_nonce(api, vid):
    nonce = "unburnt-" + secrets.token_hex(8)
    error(api.call("GET", "/video/status", {"vid": vid}, random=nonce, signature="0" * 64), 401,
          "SignatureDoesNotMatch")  # fmt: skip
    assert api.call("GET", "/video/status", {"vid": vid}, random=nonce).status_code == 200


# ---- clock skew


@pytest.mark.parametrize("skew", [-1, 1])
def test_timestamp_skew_both_ways_names_the_server_time(api, vid, test_settings, skew):
    window = test_settings.signature_window
    stale = int(time.time()) + skew * (window + 30)
    body = error(api.call("GET", "/video/status", {"vid": vid}, timestamp=stale), 401,
                 "SignatureExpired")  # fmt: skip
    assert abs(body["server_time"] - time.time()) < 10
    assert str(body["server_time"]) in body["message"]
    inside = int(time.time()) + skew * (window - 30)
    assert api.call("GET", "/video/status", {"vid": vid}, timestamp=inside).status_code == 200


@pytest.mark.parametrize("stamp", ["abc", "1.5e9", "", "9" * 40, "-1", "0x65"])
def test_malformed_timestamps_are_refused(api, vid, stamp):
    r = api.call("GET", "/video/status", {"vid": vid}, timestamp=stamp)
    assert r.status_code in (400, 401), r.text
    assert r.json()["code"] in {"InvalidParameter", "MissingParameter", "SignatureExpired"}


# ---- path and method confusion


@pytest.mark.parametrize(
    "sent_path",
    [
        "/video//status",
        "/video/status/",
        "/VIDEO/status",
        "/video/%73tatus",
        "/video/status%2F",
        "/video/./status",
        "/video/x/../status",
        "//video/status",
    ],
)
def test_signature_for_one_path_never_authorizes_another(api, server, vid, sent_path):
    query = sign_raw(api, "GET", sent_path, [f"vid={vid}"], sign_path="/video/status")
    r = raw_http(server.port, "GET", f"{sent_path}?{query}")
    assert r.status in (401, 404), r
    assert r.json()["code"] in ("SignatureDoesNotMatch", "NotFound"), r


def test_signature_for_a_read_never_authorizes_a_write(api, server, vid):
    query = sign_raw(api, "GET", "/video/delete", [f"vid={vid}"])
    error(raw_http(server.port, "POST", f"/video/delete?{query}"), 401, "SignatureDoesNotMatch")
    query = sign_raw(api, "GET", "/video/status", [f"vid={vid}"])
    error(raw_http(server.port, "POST", f"/video/delete?{query}"), 401, "SignatureDoesNotMatch")
    query = sign_raw(api, "POST", "/video/retranscode", [f"vid={vid}"])
    r = raw_http(server.port, "POST", f"/video/retransocde?{query}")  # the alias is another path
    error(r, 401, "SignatureDoesNotMatch")
    assert api.call("GET", "/video/status", {"vid": vid}).json()["status"] == "uploading"


# ---- duplicate and injected parameters


@pytest.fixture
def two_vids(api) -> tuple[int, int]:
    """Two videos of the main app."""
    return tuple(api.init(f"{i}.mp4", os.urandom(10), 1 << 20).json()["vid"] for i in range(2))


def test_added_or_dropped_parameters_break_the_signature(api, server, two_vids):
    a, b = two_vids
    query = sign_raw(api, "GET", "/video/status", [f"vid={a}"])
    for tampered in (f"{query}&vid={b}", f"vid={b}&{query}", f"{query}&x=1"):
        error(raw_http(server.port, "GET", f"/video/status?{tampered}"), 401,
              "SignatureDoesNotMatch")  # fmt: skip
    dropped = "&".join(p for p in query.split("&") if not p.startswith("vid="))
    error(raw_http(server.port, "GET", f"/video/status?{dropped}"), 401, "SignatureDoesNotMatch")


def test_a_duplicate_parameter_uses_a_signed_value(api, server, two_vids):
    a, b = two_vids
    query = sign_raw(api, "GET", "/video/status", [f"vid={a}", f"vid={b}"])
    r = raw_http(server.port, "GET", f"/video/status?{query}")
    assert (r.status == 200 and r.json()["vid"] == a) or (
        r.status == 400 and r.json()["code"] == "InvalidParameter"
    ), r


def test_reordering_signed_duplicates_does_not_change_the_value(api, server, two_vids):
    a, b = two_vids
    query = sign_raw(api, "GET", "/video/status", [f"vid={a}", f"vid={b}"])
    reordered = query.replace(f"vid={a}&vid={b}", f"vid={b}&vid={a}", 1)
    r = raw_http(server.port, "GET", f"/video/status?{reordered}")
    assert not (r.status == 200 and r.json()["vid"] == b), r


def test_duplicate_signing_parameters_cannot_switch_app_or_signature(api, other_api, server, vid):
    pairs = [f"vid={vid}", f"app_key={other_api.app_key}"]
    query = sign_raw(api, "GET", "/video/status", pairs)
    # The query now says app_key twice: ours (signed with our secret) after the other app's.
    r = raw_http(server.port, "GET", f"/video/status?{query}")
    assert r.status == 401 and r.json()["code"] in SIGNING_ERRORS, r
    good = sign_raw(api, "GET", "/video/status", [f"vid={vid}"])
    body, sig = good.rsplit("&signature=", 1)
    bad_first = f"{body}&signature={'0' * 64}&signature={sig}"
    error(raw_http(server.port, "GET", f"/video/status?{bad_first}"), 401,
          "SignatureDoesNotMatch")  # fmt: skip
    stale = int(time.time()) - 3600
    # Both timestamps are signed; the stale one comes first, and the first one counts.
    two_stamps = sign_raw(api, "GET", "/video/status", [f"vid={vid}", f"timestamp={stale}"])
    error(raw_http(server.port, "GET", f"/video/status?{two_stamps}"), 401, "SignatureExpired")


# ---- encodings


def _name_with_plus_in_base64() -> str:
    for i in range(1000):
        name = f"clip~{i}>.mp4"
        if "+" in b64name(name):
            return name
    raise AssertionError("no name found")


def test_plus_is_a_space_and_a_literal_plus_must_be_escaped(api, server, vid):
    name = _name_with_plus_in_base64()
    fn = b64name(name)
    nonce = secrets.token_hex(12)
    proper = sign_raw(api, "POST", "/video/upload/init",
                      [f"fn={enc(fn)}", "fsize=10", "psize=1048576"], random=nonce)  # fmt: skip
    assert "%2B" in proper
    # The same signature with '+' unescaped: the server reads a space, so nothing matches.
    plus = proper.replace("%2B", "+")
    error(raw_http(server.port, "POST", f"/video/upload/init?{plus}"), 401,
          "SignatureDoesNotMatch")  # fmt: skip
    r = raw_http(server.port, "POST", f"/video/upload/init?{proper}")
    assert r.status == 200, r
    info = api.call("GET", "/video/mediainfo", {"vid": r.json()["vid"]}).json()
    assert info["source_name"] == name
    # '+' and '%20' are both a space: a signature over "a b" holds for either spelling.
    for spelled in ("a+b", "a%20b"):
        q = sign_raw(api, "GET", "/video/status", [f"vid={vid}", f"note={spelled}"])
        assert raw_http(server.port, "GET", f"/video/status?{q}").status == 200


def test_lower_case_escapes_decode_to_the_signed_value(api, server, vid):
    q = sign_raw(api, "GET", "/video/status", [f"v%69d={vid}", "note=%2b%c3%a9"])
    r = raw_http(server.port, "GET", f"/video/status?{q}")
    assert r.status == 200 and r.json()["vid"] == vid, r


@pytest.mark.parametrize(
    "value", ["%FF", "%C3%28", "%ED%A0%80", "%C0%AF", "%", "%G1", "%%", "%00", "a%FFb"]
)
def test_malformed_escapes_are_never_a_server_error(api, server, vid, value):
    q = sign_raw(api, "GET", "/video/status", [f"vid={vid}", f"note={value}"])
    r = raw_http(server.port, "GET", f"/video/status?{q}")
    assert r.status in (200, 400, 401), r
    q = sign_raw(api, "GET", "/video/status", [f"vid={value}"])
    r = raw_http(server.port, "GET", f"/video/status?{q}")
    assert r.status == 400 and r.json()["code"] == "InvalidParameter", r


def test_raw_non_ascii_bytes_in_the_query_are_refused(api, server, vid):
    q = sign_raw(api, "GET", "/video/status", [f"vid={vid}"])
    r = raw_http(server.port, "GET", b"/video/status?note=\xff\xfe&" + q.encode())
    assert 400 <= r.status < 500, r


def test_a_signature_over_one_invalid_byte_does_not_authorize_another(api, server, vid):
    q = sign_raw(api, "GET", "/video/status", [f"vid={vid}", "note=%FF"])
    r = raw_http(server.port, "GET", f"/video/status?{q.replace('note=%FF', 'note=%FE')}")
    assert r.status != 200, r
