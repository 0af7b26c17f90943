"""Console login sessions (pure): an expiring cookie value signed with a server secret.

The value is ``v1.<expires_at>.<nonce>.<signature>``; the signature covers the expiry, the
nonce and a digest of the configured console key, so changing VASSET_CONSOLE_KEY ends every
session at once. Nothing is stored server-side.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

COOKIE = "vasset_console"
TTL = 12 * 3600
_EXPIRES = re.compile(r"[0-9]{1,12}")


def key_matches(given: str, configured: str) -> bool:
    """Whether a login key equals the configured console key (constant time, any lengths)."""
    if not configured:
        return False
    a = hashlib.sha256(given.encode()).digest()
    b = hashlib.sha256(configured.encode()).digest()
    return hmac.compare_digest(a, b)


def _signature(secret: bytes, console_key: str, expires_at: int, nonce: str) -> str:
    key_digest = hashlib.sha256(console_key.encode()).hexdigest()
    msg = f"v1\n{expires_at}\n{nonce}\n{key_digest}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def issue(secret: bytes, console_key: str, now: int, ttl: int = TTL) -> str:
    """A new session cookie value valid until now + ttl."""
    expires_at = now + ttl
    nonce = secrets.token_urlsafe(12)
    return f"v1.{expires_at}.{nonce}.{_signature(secret, console_key, expires_at, nonce)}"


def valid(secret: bytes, console_key: str, value: str | None, now: float) -> bool:
    """Whether a cookie value is authentic, unexpired and made for this console key."""
    if not value or not console_key:
        return False
    parts = value.split(".")
    # ASCII digits of a sane length: int() refuses over 4,300 digits and isdigit() takes "²".
    if len(parts) != 4 or parts[0] != "v1" or not _EXPIRES.fullmatch(parts[1]):
        return False
    expires_at, nonce, signature = int(parts[1]), parts[2], parts[3]
    if now > expires_at:
        return False
    expected = _signature(secret, console_key, expires_at, nonce)
    return hmac.compare_digest(expected.encode(), signature.encode())
