"""Checks a signed call or an upload token against the apps, the clock and the nonces."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.auth.nonces import NonceBatcher
from vasset.auth.signing import parse_query, sign, signatures_match
from vasset.db import transaction
from vasset.redis_client import redis_guard

NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class App(msgspec.Struct, frozen=True):
    """The caller an authenticated request acts for."""

    id: int
    name: str
    app_key: str
    app_secret: str
    enabled: bool


class Authenticator:
    """Verifies API.md signatures; one per process, shared by all requests."""

    def __init__(self, engine: AsyncEngine, redis, settings) -> None:
        self._engine = engine
        self._redis = redis
        self._settings = settings
        self._cache: dict[str, tuple[float, App | None]] = {}
        self._nonces = NonceBatcher(redis, settings.nonce_ttl)

    async def app_by_key(self, app_key: str) -> App | None:
        """Look an app up, cached for a few seconds so signing costs no query per call."""
        now = time.monotonic()
        hit = self._cache.get(app_key)
        if hit and hit[0] > now:
            return hit[1]
        async with transaction(self._engine) as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, name, app_key, app_secret, enabled FROM app WHERE app_key = :k"
                    ),
                    {"k": app_key},
                )
            ).first()
        app = App(row[0], row[1], row[2], row[3], bool(row[4])) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[app_key] = (now + 5.0, app)
        return app

    async def verify_signed(self, method: str, path: str, query_string: str) -> App:
        """Authenticate a signed call or raise the matching 4xx error."""
        pairs = parse_query(query_string)
        params: dict[str, str] = {}
        for name, value in pairs:
            params.setdefault(name, value)
        for name in ("app_key", "timestamp", "random", "signature"):
            if not params.get(name):
                raise errors.MissingParameter(f"missing required parameter: {name}")
        try:
            timestamp = int(params["timestamp"])
        except ValueError:
            raise errors.InvalidParameter("timestamp must be Unix seconds") from None
        if not NONCE_RE.match(params["random"]):
            raise errors.InvalidParameter("random must be 16-64 characters of [A-Za-z0-9_-]")
        now = int(time.time())
        if abs(now - timestamp) > self._settings.signature_window:
            raise errors.SignatureExpired(
                f"timestamp is more than {self._settings.signature_window} s from the server "
                f"time {now}",
                server_time=now,
            )
        app = await self.app_by_key(params["app_key"])
        if app is None or not app.enabled:
            raise errors.InvalidAppKey()
        expected = sign(app.app_secret, method, path, pairs)
        if not signatures_match(expected, params["signature"]):
            raise errors.SignatureDoesNotMatch()
        # The nonce is spent only by a correctly signed call, so garbage cannot burn nonces.
        s = self._settings
        key = f"{s.redis_prefix}nonce:{app.app_key}:{params['random']}"
        # The per-app rate is a one-second window counter, written with the nonce.
        window = f"{s.redis_prefix}rate:{app.app_key}:{now}" if s.rate_limit > 0 else None
        async with redis_guard():
            fresh, calls = await self._nonces.spend(key, window)
        if not fresh:
            raise errors.SignatureNonceUsed()
        if s.rate_limit > 0 and calls > s.rate_limit:
            raise errors.Throttled(
                f"more than {s.rate_limit} signed calls per second for this app_key", retry_after=1
            )
        return app


def new_upload_token() -> tuple[str, str]:
    """A fresh upload token and the SHA-256 hex stored in its place."""
    import secrets

    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    """SHA-256 hex of an upload token (the database never holds the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_digest: str) -> bool:
    """Constant-time check of an upload token against its stored digest."""
    return hmac.compare_digest(token_digest(token).encode(), stored_digest.encode())
