"""The request signature of API.md, as pure functions (SDKs mirror this file)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

UNRESERVED = "-_.~"
#: Values made of unreserved characters only (most are: keys, digits, hex) encode to themselves.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: unreserved characters stay, everything else is %XX of its UTF-8."""
    return value if _PLAIN(value) else quote(value, safe=UNRESERVED)


def parse_query(query_string: str, errors: str = "replace") -> list[tuple[str, str]]:
    """Decode a raw query string into (name, value) pairs, keeping blanks and order.

    errors="strict" raises UnicodeDecodeError for escapes that are not UTF-8.
    """
    pairs = []
    for item in query_string.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if "%" in item or "+" in item:
            name, value = unquote_plus(name, errors=errors), unquote_plus(value, errors=errors)
        pairs.append((name, value))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Every pair except signature, encoded, sorted by name then value, joined with '&'."""
    encoded = sorted(
        (percent_encode(name), percent_encode(value))
        for name, value in pairs
        if name != "signature"
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def string_to_sign(method: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    """METHOD, PATH and CANONICAL_QUERY joined by newlines."""
    return f"{method.upper()}\n{path}\n{canonical_query(pairs)}"


def sign(secret: str, method: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign, keyed by the app secret."""
    message = string_to_sign(method, path, pairs).encode()
    return hmac.digest(secret.encode(), message, "sha256").hex()


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(expected.encode(), given.lower().encode())
