"""Checks a signed call or an upload token against the apps, the clock and the nonces."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from typing import NamedTuple

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors, redis_keys
from vasset.apps import repository as apps
from vasset.auth.nonces import NonceBatcher
from vasset.auth.signing import parse_query, sign, signatures_match
from vasset.db import transaction
from vasset.redis_client import REDIS_DOWN, AnyRedis, redis_guard

#: API.md's nonce alphabet; fullmatch, so no trailing newline slips through as with ``$``.
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: Unix seconds in ASCII digits only: int() alone would accept " 1", "+1", "1_0" and "١".
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_UNKNOWN = object()  # the app generation when Redis cannot say: matches no cache entry
_ANY = object()  # no generation asked for: any unexpired cache entry will do


class App(msgspec.Struct, frozen=True):
    """The caller an authenticated request acts for."""

    id: int
    name: str
    app_key: str
    app_secret: str
    enabled: bool


class _Cached(NamedTuple):
    expires: float
    generation: object  # the announced app generation the row is known to be current for
    app: App | None


class Authenticator:
    """Verifies API.md signatures; one per process, shared by all requests.

    Apps are cached per process. Every change of an app (vasset apps disable/enable) sets a new
    random generation in Redis; each signed call reads it in the pipeline that spends its nonce,
    and a cached row read under another generation is read again before the call is accepted.
    """

    def __init__(self, engine: AsyncEngine, redis: AnyRedis, settings) -> None:
        self._engine = engine
        self._redis = redis
        self._settings = settings
        self._by_key: dict[str, _Cached] = {}
        self._by_id: dict[int, _Cached] = {}
        self._key_reads: dict[str, tuple[object, asyncio.Future]] = {}
        self._nonces = NonceBatcher(
            redis, settings.nonce_ttl, redis_keys.app_generation(settings.redis_prefix)
        )

    async def app_by_key(self, app_key: str, generation: object = _ANY) -> App | None:
        """Look an app up, cached so signing costs no query per call.

        With a generation, a cached row read under another generation is read again.
        """
        hit = self._by_key.get(app_key)
        fresh = hit is not None and hit.expires > time.monotonic()
        if hit is not None and fresh and (generation is _ANY or hit.generation == generation):
            return hit.app
        # Tag with a generation seen before the read: the row is at least that current.
        tag = self._nonces.seen if generation is _ANY else generation
        # When the entry expires every request in flight misses at once: they share one read
        # if it is current enough for them (it started under the generation they ask for).
        read = self._key_reads.get(app_key)
        if read is None or (generation is not _ANY and read[0] != generation):
            task = asyncio.ensure_future(self._read_app(app_key, tag))
            read = self._key_reads[app_key] = (tag, task)
            task.add_done_callback(lambda done: self._read_done(app_key, done))
        return await asyncio.shield(read[1])

    async def _read_app(self, app_key: str, tag: object) -> App | None:
        async with transaction(self._engine) as conn:
            row = await apps.app_by_key(conn, app_key)
        app = App(**msgspec.structs.asdict(row)) if row else None
        self._by_key = self._remember(self._by_key, app_key, tag, app)
        return app

    def _read_done(self, app_key: str, read: asyncio.Future) -> None:
        if (current := self._key_reads.get(app_key)) is not None and current[1] is read:
            del self._key_reads[app_key]
        if not read.cancelled():
            read.exception()  # retrieved here too: every waiter may have gone

    async def current_app(self, app_key: str) -> App | None:
        """The app as of the announced generation (one batched Redis read, rarely a query)."""
        return await self.app_by_key(app_key, await self._generation())

    async def check_app_enabled(self, app_id: int) -> App:
        """The app that owns an upload; InvalidAppKey unless it is enabled right now."""
        generation = await self._generation()
        hit = self._by_id.get(app_id)
        if hit and hit.expires > time.monotonic() and hit.generation == generation:
            app = hit.app
        else:
            async with transaction(self._engine) as conn:
                row = await apps.app_by_id(conn, app_id)
            app = App(**msgspec.structs.asdict(row)) if row else None
            self._by_id = self._remember(self._by_id, app_id, generation, app)
        if app is None or not app.enabled:
            raise errors.InvalidAppKey("the app of this upload is disabled")
        return app

    async def _generation(self) -> object:
        try:
            return await self._nonces.watched()
        except REDIS_DOWN:
            # MySQL stays the truth: without Redis every check reads the row again.
            return _UNKNOWN

    def _remember(self, cache: dict, key, generation: object, app: App | None) -> dict:
        if len(cache) > 10_000:
            cache = {}
        cache[key] = _Cached(time.monotonic() + self._settings.app_cache_ttl, generation, app)
        return cache

    async def verify_signed(self, method: str, path: str, query_string: str) -> App:
        """Authenticate a signed call or raise the matching 4xx error."""
        app, _ = await self.verify_signed_query(method, path, query_string)
        return app

    async def verify_signed_query(
        self, method: str, path: str, query_string: str
    ) -> tuple[App, dict[str, str]]:
        """As verify_signed, plus the query's first values (so it is decoded only once)."""
        try:
            # Strict: lossy decoding would make a signature over %FF also cover %FE.
            pairs = parse_query(query_string, errors="strict")
        except UnicodeDecodeError:
            raise errors.InvalidParameter("query escapes must be UTF-8") from None
        params: dict[str, str] = {}
        for name, value in pairs:
            params.setdefault(name, value)
        for name in ("app_key", "timestamp", "random", "signature"):
            if not params.get(name):
                raise errors.MissingParameter(f"missing required parameter: {name}", parameter=name)
        if not TIMESTAMP_RE.fullmatch(params["timestamp"]):
            raise errors.InvalidParameter("timestamp must be Unix seconds", parameter="timestamp")
        timestamp = int(params["timestamp"])
        if not NONCE_RE.fullmatch(params["random"]):
            raise errors.InvalidParameter(
                "random must be 16-64 characters of [A-Za-z0-9_-]", parameter="random"
            )
        now = int(time.time())
        if abs(now - timestamp) > self._settings.signature_window:
            raise errors.SignatureExpired(
                f"timestamp is more than {self._settings.signature_window} s from the server "
                f"time {now}",
                server_time=now,
            )
        app_key = params["app_key"]
        app = await self.app_by_key(app_key)
        if app is None or not app.enabled:
            # A refusal is re-checked against the announced generation: it may be re-enabled.
            app = await self.current_app(app_key)
            if app is None or not app.enabled:
                raise errors.InvalidAppKey()
        expected = sign(app.app_secret, method, path, pairs)
        if not signatures_match(expected, params["signature"]):
            raise errors.SignatureDoesNotMatch()
        if len(params) != len(pairs):
            # Duplicates sort into the signature in any order, but only the first is used.
            raise errors.InvalidParameter("a parameter is given more than once")
        # The nonce is spent only by a correctly signed call, so garbage cannot burn nonces.
        s = self._settings
        key = redis_keys.nonce(s.redis_prefix, app.app_key, params["random"])
        # The per-app rate is a one-second window counter, written with the nonce.
        window = (
            redis_keys.rate_window(s.redis_prefix, app.app_key, now) if s.rate_limit > 0 else None
        )
        async with redis_guard():
            fresh, calls, generation = await self._nonces.spend_and_watch(key, window)
        if not fresh:
            raise errors.SignatureNonceUsed()
        current = await self.app_by_key(app_key, generation)
        if current is None or not current.enabled:
            raise errors.InvalidAppKey()
        if current.app_secret != app.app_secret:
            raise errors.SignatureDoesNotMatch()
        if s.rate_limit > 0 and calls > s.rate_limit:
            raise errors.Throttled(
                f"more than {s.rate_limit} signed calls per second for this app_key", retry_after=1
            )
        return current, params


async def announce_app_change(redis: AnyRedis, redis_prefix: str) -> None:
    """Tell every API process to read its cached apps again (a new random generation)."""
    import secrets

    await redis.set(redis_keys.app_generation(redis_prefix), secrets.token_hex(8))


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
