"""Verifying webhook deliveries (the Standard Webhooks scheme), with no dependency.

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: one or more space-separated ``v1,<Base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{body}"``, keyed with the Base64 bytes after ``whsec_`` of the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TOLERANCE", "WebhookVerificationError", "sign_webhook", "verify_webhook"]

#: Seconds a delivery's timestamp may be away from the receiver's clock (either way).
TOLERANCE = 300
_PREFIX = "whsec_"


class WebhookVerificationError(ValueError):
    """A delivery whose headers are missing, whose timestamp is too old or too new, or whose
    signature matches none of the secrets; `reason` is missing_headers, bad_timestamp,
    too_old, too_new, bad_secret or no_match."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("bad_secret", "the secret is not whsec_ + Base64") from None
    if not key:
        raise WebhookVerificationError("bad_secret", "the secret is empty")
    return key


def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<Base64>`` signature of one delivery (what the server sends)."""
    data = body.encode() if isinstance(body, str) else body
    mac = hmac.new(_key(secret), f"{msg_id}.{int(timestamp)}.".encode() + data, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes | Sequence[str | bytes],
    *,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivered event as a dict once its signature checks out, else WebhookVerificationError.

    `body` must be the raw request body, byte for byte. `secret` may be a list: while a secret
    is being rotated, a receiver may hold both (the server also signs with both meanwhile).
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("bad_timestamp", f"bad timestamp {stamp!r}") from None
    skew = (time.time() if now is None else now) - timestamp
    if skew > tolerance:
        raise WebhookVerificationError("too_old", f"the delivery is {skew:.0f} s old")
    if skew < -tolerance:
        raise WebhookVerificationError("too_new", f"the delivery is {-skew:.0f} s in the future")
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    expected = [sign_webhook(s, msg_id, timestamp, body) for s in secrets]
    for given in signatures.split():
        if not given.startswith("v1,"):
            continue  # another scheme (v1a: asymmetric) that this verifier does not use
        # compare_digest on every pair: no early exit tells an attacker which part matched.
        if any(hmac.compare_digest(given.encode(), e.encode()) for e in expected):
            data = body.decode() if isinstance(body, bytes) else body
            answer: dict[str, Any] = json.loads(data)
            return answer
    raise WebhookVerificationError("no_match", "no signature matches the secret")
