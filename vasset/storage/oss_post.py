"""Browser PostObject for OSS: the V1 policy form that lets a page upload under one prefix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlparse

import oss2


def post_form(
    *,
    endpoint: str,
    bucket: str,
    full_prefix: str,
    max_size: int,
    expires_at: int,
    access_key_id: str,
    access_key_secret: str,
    security_token: str = "",
) -> tuple[str, dict[str, str]]:
    """URL and form fields of a PostObject whose policy pins bucket, key prefix and size."""
    # The browser adds ``key`` (full_prefix, then its own part) and ``file`` (last).
    expiration = datetime.fromtimestamp(int(expires_at), UTC)
    policy = {
        "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            {"bucket": bucket},
            ["starts-with", "$key", full_prefix],
            ["content-length-range", 1, int(max_size)],
        ],
    }
    policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
    digest = hmac.new(access_key_secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
    fields = {
        "OSSAccessKeyId": access_key_id,
        "policy": policy_b64,
        "Signature": base64.b64encode(digest).decode(),
        "success_action_status": "201",
    }
    if security_token:
        fields["x-oss-security-token"] = security_token
    parsed = urlparse(endpoint)
    if oss2.utils.is_ip_or_localhost(parsed.netloc):
        url = f"{parsed.scheme}://{parsed.netloc}/{bucket}/"
    else:
        url = f"{parsed.scheme}://{bucket}.{parsed.netloc}/"
    return url, fields
