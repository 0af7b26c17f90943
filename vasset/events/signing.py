"""Standard Webhooks headers of one delivery attempt: id, timestamp and signature(s)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook


def message_id(event_id: int) -> str:
    """The webhook-id: the event's, so every attempt and every endpoint gets the same one."""
    return f"evt_{event_id}"


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    # Decoding the secret's Base64 once per secret, not once per attempt.
    return Webhook(secret)


def signature(
    msg_id: str,
    timestamp: int,
    body: str,
    secret: str,
    old_secret: str | None = None,
    old_until: int | None = None,
) -> str:
    """The webhook-signature: "v1,<b64>", plus the old secret's while its overlap lasts."""
    when = datetime.fromtimestamp(timestamp, UTC)
    sigs = [_signer(secret).sign(msg_id, when, body)]
    if old_secret and old_until is not None and old_until > timestamp:
        sigs.append(_signer(old_secret).sign(msg_id, when, body))
    return " ".join(sigs)


def headers(
    event_id: int,
    timestamp: int,
    body: str,
    secret: str,
    old_secret: str | None = None,
    old_until: int | None = None,
) -> dict[str, str]:
    """Every header of one attempt (the transport adds Host and Content-Length)."""
    msg_id = message_id(event_id)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(msg_id, timestamp, body, secret, old_secret, old_until),
        "content-type": "application/json",
        "user-agent": "vasset",
    }
