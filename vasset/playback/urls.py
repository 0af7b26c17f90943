"""Signed URLs for stored objects (pure): the API's own /play URLs and CDN type-A auth.

A /play URL signs a *scope*: one object key, or for HLS the whole ladder prefix
``media/{vid}/{attempt}/hls/``, so a player given only the master playlist URL can fetch every
variant playlist and segment through relative URIs until the URL expires. A storyboard's
folder ``media/{vid}/{attempt}/storyboard/`` is one scope too: its VTT names its sheets relatively.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import quote

_HLS_SCOPE = re.compile(r"^(media/\d+/[0-9]+-[a-z0-9_]+/(?:hls|storyboard)/)")


def scope_of(key: str) -> str:
    """What a signature over key covers: the HLS ladder or storyboard prefix, else the key."""
    match = _HLS_SCOPE.match(key)
    return match.group(1) if match else key


def url_signature(secret: bytes, scope: str, expires_at: int) -> str:
    """Hex HMAC-SHA256 over scope and expiry (truncated to 32 hex: 128 bits)."""
    msg = f"{scope}\n{expires_at}".encode()
    return hmac.digest(secret, msg, "sha256").hex()[:32]


def play_path(secret: bytes, key: str, expires_at: int) -> str:
    """The path of a signed /play URL for key."""
    sig = url_signature(secret, scope_of(key), expires_at)
    return f"/play/{expires_at}/{sig}/{quote(key, safe='/-_.~')}"


def verify(secret: bytes, key: str, expires_at: int, signature: str, now: float) -> bool:
    """Whether a /play URL is authentic and not expired (constant-time)."""
    if now > expires_at:
        return False
    expected = url_signature(secret, scope_of(key), expires_at)
    return hmac.compare_digest(expected.encode(), signature.encode())


def cdn_type_a(
    domain: str, key: str, private_key: str, expires_at: int, scheme: str = "https"
) -> str:
    """Aliyun CDN URL authentication, type A: auth_key=timestamp-rand-uid-md5hash."""
    path = "/" + quote(key, safe="/-_.~")
    rand = secrets.token_hex(8)
    uid = "0"
    digest = hashlib.md5(f"{path}-{expires_at}-{rand}-{uid}-{private_key}".encode()).hexdigest()
    return f"{scheme}://{domain}{path}?auth_key={expires_at}-{rand}-{uid}-{digest}"
