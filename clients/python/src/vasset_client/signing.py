"""Request signing of the vasset API (HMAC-SHA256 over METHOD, PATH and a canonical query)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

__all__ = [
    "canonical_query",
    "encode_query",
    "new_nonce",
    "percent_encode",
    "sign",
    "sign_params",
    "string_to_sign",
]

UNRESERVED = "-_.~"

Pairs = Iterable[tuple[str, str]]


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: A-Z a-z 0-9 - _ . ~ stay, everything else is upper-case %XX of UTF-8."""
    return quote(value, safe=UNRESERVED)


def _pairs(params: Mapping[str, object] | Pairs) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), _text(v)) for k, v in items if v is not None]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def canonical_query(params: Mapping[str, object] | Pairs) -> str:
    """Every pair except signature, encoded, sorted by encoded name then value, joined by '&'."""
    encoded = sorted(
        (percent_encode(k), percent_encode(v)) for k, v in _pairs(params) if k != "signature"
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def string_to_sign(method: str, path: str, params: Mapping[str, object] | Pairs) -> str:
    """METHOD, PATH and CANONICAL_QUERY joined by newlines."""
    return f"{method.upper()}\n{path}\n{canonical_query(params)}"


def sign(secret: str, method: str, path: str, params: Mapping[str, object] | Pairs) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign, keyed by the app secret."""
    message = string_to_sign(method, path, params).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh `random`: 32 characters of [A-Za-z0-9_-]."""
    return secrets.token_urlsafe(24)


def sign_params(
    method: str,
    path: str,
    params: Mapping[str, object],
    app_key: str,
    app_secret: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> list[tuple[str, str]]:
    """The request's parameters plus app_key, timestamp, random and signature."""
    pairs = [(k, v) for k, v in _pairs(params) if k not in ("signature",)]
    pairs += [
        ("app_key", app_key),
        ("timestamp", str(int(time.time()) if timestamp is None else int(timestamp))),
        ("random", nonce or new_nonce()),
    ]
    pairs.append(("signature", sign(app_secret, method, path, pairs)))
    return pairs


def encode_query(pairs: Pairs) -> str:
    """A query string of the pairs, RFC 3986 encoded, in the given order."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
