"""Signed requests with retries: backoff with jitter, Retry-After, clock-skew repair."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from vasset_client import errors
from vasset_client.signing import encode_query, sign_params

__all__ = ["Body", "SignedTransport"]

#: A request body: bytes, or a factory of a fresh byte iterator (called once per attempt).
Body = bytes | Callable[[], Iterable[bytes]]

USER_AGENT = "vasset-client-python/0.1"


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """The error body: the API's JSON, or Code/Message of a storage XML error."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    text = response.text
    body: dict[str, Any] = {"message": text[:200]}
    for key, tag in (("code", "Code"), ("message", "Message"), ("request_id", "RequestId")):
        match = re.search(f"<{tag}>([^<]*)</{tag}>", text)
        if match:
            body[key] = match.group(1)
    return body


class SignedTransport:
    """The HTTP side of a Client: signs every attempt anew and retries what may succeed later."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        timeout: float = 60.0,
        retries: int = 4,
        *,
        backoff: float = 0.25,
        max_backoff: float = 10.0,
        max_retry_after: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._prefix = httpx.URL(self.base_url).raw_path.decode("ascii").rstrip("/")
        self.app_key = app_key
        self.app_secret = app_secret
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        #: Seconds added to the local clock when signing (learnt from SignatureExpired).
        self.clock_offset = 0.0
        #: Replaceable for tests: how the client waits between attempts.
        self.sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def signed_url(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> str:
        """A freshly signed URL (new timestamp and random) for one request."""
        full_path = self._prefix + path
        pairs = sign_params(
            method.upper(),
            full_path,
            params or {},
            self.app_key,
            self.app_secret,
            timestamp=int(time.time() + self.clock_offset),
        )
        return f"{self.base_url}{path}?{encode_query(pairs)}"

    def _unsigned_url(self, path: str, params: Mapping[str, Any]) -> str:
        pairs = [(k, str(v)) for k, v in params.items() if v is not None]
        return f"{self.base_url}{path}?{encode_query(pairs)}"

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    @staticmethod
    def _retryable(exc: errors.VassetError) -> bool:
        return (
            exc.status >= 500
            or exc.status == 429
            or isinstance(exc, errors.UploadInProgress | errors.Throttled)
        )

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
    ) -> dict[str, Any]:
        """Send one API call with retries (each attempt re-signed); returns the JSON answer."""
        method = method.upper()

        def url() -> str:
            if signed:
                return self.signed_url(method, path, params)
            return self._unsigned_url(path, params or {})

        response = self.send(method, url, content=content, headers=headers, signed=signed)
        return self._json(response)

    def send(
        self,
        method: str,
        url: Callable[[], str],
        *,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = False,
    ) -> httpx.Response:
        """The retry loop: url() gives each attempt's URL; raises typed errors for 4xx/5xx."""
        skew_fixed = False
        attempt = 0
        while True:
            body = content() if callable(content) else content
            try:
                response = self._http.request(method, url(), content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise errors.NetworkError(f"{type(exc).__name__}: {exc}") from exc
                delay = self.backoff_delay(attempt)
            else:
                if response.status_code < 400:
                    return response
                error = errors.from_response(
                    response.status_code, _error_body(response), response.headers
                )
                if (
                    isinstance(error, errors.SignatureExpired)
                    and error.server_time is not None
                    and signed
                    and not skew_fixed
                ):
                    # Our clock is off: sign with the server's time from now on, retry at once.
                    self.clock_offset = error.server_time - time.time()
                    skew_fixed = True
                    continue
                if not self._retryable(error) or attempt >= self.retries:
                    raise error
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None:
                    delay = min(float(retry_after), self.max_retry_after)
                else:
                    delay = self.backoff_delay(attempt)
            attempt += 1
            self.sleep(delay)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise errors.ServerError(
                "the answer is not a JSON object",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return data
