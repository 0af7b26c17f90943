"""The bearer-token rule of every /metrics endpoint."""

from __future__ import annotations

import hashlib
import hmac


def bearer_accepted(authorization: str, token: str) -> bool:
    """Whether /metrics is open (no token configured) or authorization is `Bearer <token>`."""
    if not token:
        return True
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Digests, so the comparison takes the same time whatever the lengths.
    expected = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(expected, hashlib.sha256(given.strip().encode()).digest())
