"""docs/EVENTS.md: the signing worked example, and every event type documented."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

import standardwebhooks
from vasset_client import verify_webhook
from vasset_client.webhooks import sign_webhook

from vasset.events.types import EventType

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_2Z8k0example"
TIMESTAMP = 1704067200
BODY = (
    '{"type":"video.playable","timestamp":"2024-01-01T00:00:00.000Z","data":{"vid":42,'
    '"upload_id":"u_example","status":"playable","seq":7,"progress":100}}'
)
SIGNATURE = "v1,NHTDei2VtmKSh8f+l6xSCkiJ3m2r1xB+S8lvUH9iKSo="


def test_worked_example_matches_every_implementation():
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.{BODY}".encode(), hashlib.sha256).digest()
    assert "v1," + base64.b64encode(mac).decode() == SIGNATURE
    when = datetime.fromtimestamp(TIMESTAMP, UTC)
    assert standardwebhooks.Webhook(SECRET).sign(MSG_ID, when, BODY) == SIGNATURE
    assert sign_webhook(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}
    event = verify_webhook({**headers, "webhook-signature": SIGNATURE}, BODY, SECRET, now=TIMESTAMP)
    assert event["data"]["seq"] == 7


def test_events_md_documents_the_same_example(root_dir):
    doc = (root_dir / "docs" / "EVENTS.md").read_text()
    for value in (SECRET, MSG_ID, str(TIMESTAMP), BODY, SIGNATURE):
        assert value in doc, value


def test_every_event_type_has_a_row(root_dir):
    doc = (root_dir / "docs" / "EVENTS.md").read_text()
    rows = set(re.findall(r"^\| `([a-z.]+)` \|", doc, re.M))
    assert rows >= {t.value for t in EventType}


def test_readme_links_the_events_doc(root_dir):
    assert "docs/EVENTS.md" in (root_dir / "README.md").read_text()
