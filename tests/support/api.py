"""A small signing client for tests (independent of the SDK, built from API.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

import httpx

from tests.support.contract import contract_for


def enc(value: str) -> str:
    """RFC 3986 percent-encoding."""
    return quote(value, safe="-_.~")


def signed_query(method: str, path: str, params: dict, app_key: str, secret: str, **over) -> str:
    """Query string with the four signing parameters added (overrides allow tampering)."""
    full = {k: str(v) for k, v in params.items() if v is not None}
    full.setdefault("app_key", app_key)
    full.setdefault("timestamp", str(over.pop("timestamp", int(time.time()))))
    full.setdefault("random", over.pop("random", secrets.token_hex(12)))
    canonical = "&".join(f"{n}={v}" for n, v in sorted((enc(k), enc(v)) for k, v in full.items()))
    sts = f"{method}\n{path}\n{canonical}"
    sig = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    full["signature"] = over.pop("signature", sig)
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in full.items())


def b64name(name: str) -> str:
    """Base64 of a UTF-8 file name."""
    return base64.b64encode(name.encode()).decode()


class Api:
    """Signed calls against a running vasset."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        timeout: float = 60,
        check_contract: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Every answer is checked against the server's OpenAPI document (tests/support/contract.py).
        self.check_contract = check_contract
        self.app_key = app_key
        self.app_secret = app_secret
        self.http = httpx.Client(timeout=timeout)

    def url(self, method: str, path: str, params: dict | None = None, **over) -> str:
        """A signed URL."""
        q = signed_query(method, path, params or {}, self.app_key, self.app_secret, **over)
        return f"{self.base_url}{path}?{q}"

    def call(
        self, method: str, path: str, params: dict | None = None, content=None, headers=None, **over
    ):
        """Send a signed request; returns the httpx.Response (checked against the contract)."""
        response = self.http.request(
            method, self.url(method, path, params, **over), content=content, headers=headers
        )
        if self.check_contract:
            contract_for(self.base_url).check(response)
        return response

    def init(self, name: str, data: bytes, psize: int, with_hash: bool = True, **extra):
        """POST /video/upload/init for data."""
        params = {"fn": b64name(name), "fsize": len(data), "psize": psize, **extra}
        if with_hash:
            params["hash"] = hashlib.md5(data).hexdigest()
        return self.call("POST", "/video/upload/init", params)

    def put_part(self, upid: str, pseq: int, body: bytes, with_hash: bool = True, **extra):
        """PUT one part."""
        params = {"upid": upid, "pseq": pseq, **extra}
        if with_hash:
            params.setdefault("hash", hashlib.md5(body).hexdigest())
        return self.call("PUT", "/video/upload/upload", params, content=body)

    def upload(self, name: str, data: bytes, psize: int, **extra) -> dict:
        """A whole upload in order; returns the completion answer."""
        r = self.init(name, data, psize, **extra)
        r.raise_for_status()
        init = r.json()
        if init.get("instant"):
            return init
        answer = None
        for i in range(init["part_count"]):
            r = self.put_part(init["upload_id"], i + 1, data[i * psize : (i + 1) * psize])
            assert r.status_code == 200, r.text
            answer = r.json()
        return answer
