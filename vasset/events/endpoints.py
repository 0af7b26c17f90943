"""Webhook endpoints of an app: register (SSRF-checked), list, delete, rotate; its deliveries.

Every call names its app; ``app_id=None`` is the operator (the `vasset webhooks` CLI), who may
act on any app's endpoints. Another app's endpoint or delivery is a 404, as is a deleted one.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.apps import repository as apps
from vasset.db import transaction
from vasset.events import ssrf
from vasset.events import webhook_repository as repo
from vasset.events.types import parse_types
from vasset.net import Resolver, system_resolver
from vasset.settings import Settings

log = structlog.get_logger(__name__)

#: Live endpoints one app may have (each one multiplies every event into a delivery).
MAX_ENDPOINTS = 50
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A signing secret: whsec_ + Base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _events_list(stored: str) -> list[str]:
    return [e for e in stored.split(",") if e]


def _endpoint(row: repo.EndpointRow, now: int) -> dict[str, Any]:
    """An endpoint as listed: everything but its secrets."""
    rotating = row.old_secret is not None and (row.old_secret_until or 0) > now
    return {
        "id": row.id,
        "url": row.url,
        "events": _events_list(row.events),
        "enabled": bool(row.enabled),
        "disabled_reason": row.disabled_reason,
        "last_success_at": row.last_success_at,
        "failing_since": row.failing_since,
        "old_secret_expires_at": row.old_secret_until if rotating else None,
        "create_time": row.create_time,
    }


def _delivery(row: repo.DeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "create_time": row.create_time,
    }


class WebhookService:
    """The calls of /webhooks/* and `vasset webhooks`."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, resolver: Resolver = system_resolver
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.resolver = resolver

    async def app_id(self, app_key: str) -> int:
        """The id of an app by its key (the CLI names apps by key)."""
        async with transaction(self.engine) as conn:
            app = await apps.app_by_key(conn, app_key)
        if app is None:
            raise errors.InvalidAppKey(f"no app with key {app_key!r}")
        return app.id

    async def create(self, app_id: int, url: str, events: str = "*") -> dict[str, Any]:
        """Register an endpoint; the answer is the only one that shows its secret."""
        try:
            types = parse_types(events)
        except ValueError as exc:
            raise errors.InvalidParameter(str(exc), parameter="events") from None
        # Checked (and resolved) outside the transaction: DNS may take a while.
        parsed = ssrf.parse_url(url)
        await ssrf.resolve_target(parsed, self.settings.webhook_allow_hosts, self.resolver)
        secret = new_secret()
        now = int(time.time())
        async with transaction(self.engine) as conn:
            if await repo.count_endpoints(conn, app_id) >= MAX_ENDPOINTS:
                raise errors.InvalidState(f"an app may have at most {MAX_ENDPOINTS} endpoints")
            endpoint_id = await repo.insert_endpoint(
                conn, app_id, str(parsed), ",".join(types), secret, now
            )
        log.info("webhook_endpoint_created", app_id=app_id, id=endpoint_id, events=types)
        return {"id": endpoint_id, "url": str(parsed), "events": types, "secret": secret}

    async def endpoints(self, app_id: int) -> list[dict[str, Any]]:
        """An app's endpoints, oldest first, without secrets."""
        async with transaction(self.engine) as conn:
            rows = await repo.list_endpoints(conn, app_id)
        now = int(time.time())
        return [_endpoint(r, now) for r in rows]

    async def delete(self, app_id: int | None, endpoint_id: int) -> dict[str, Any]:
        """Delete an endpoint: nothing more is delivered to it."""
        async with transaction(self.engine) as conn:
            if not await repo.delete_endpoint(conn, endpoint_id, app_id, int(time.time())):
                raise errors.EndpointNotFound()
        log.info("webhook_endpoint_deleted", app_id=app_id, id=endpoint_id)
        return {"id": endpoint_id, "deleted": True}

    async def rotate(self, app_id: int | None, endpoint_id: int) -> dict[str, Any]:
        """A new secret; the current one keeps signing for webhook_rotation_overlap seconds.

        A second rotation within the overlap ends the oldest secret at once: deliveries carry
        at most two signatures.
        """
        secret = new_secret()
        until = int(time.time()) + int(self.settings.webhook_rotation_overlap)
        async with transaction(self.engine) as conn:
            row = await repo.get_endpoint(conn, endpoint_id, app_id, lock=True)
            if row is None:
                raise errors.EndpointNotFound()
            await repo.rotate_secret(conn, endpoint_id, secret, until)
        log.info("webhook_secret_rotated", app_id=row.app_id, id=endpoint_id, old_until=until)
        return {"id": endpoint_id, "secret": secret, "old_secret_expires_at": until}

    async def deliveries(
        self,
        app_id: int | None,
        endpoint_id: int,
        status: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """An endpoint's deliveries, newest first, a page at a time."""
        async with transaction(self.engine) as conn:
            if await repo.get_endpoint(conn, endpoint_id, app_id) is None:
                raise errors.EndpointNotFound()
            rows = await repo.list_deliveries(conn, endpoint_id, status, before, limit)
        return {
            "deliveries": [_delivery(r) for r in rows],
            "next_before": rows[-1].id if len(rows) == limit else None,
        }

    async def retry(self, app_id: int | None, delivery_id: int) -> dict[str, Any]:
        """Make a failed or pending delivery due now (attempts kept); answers it as it is now."""
        now_ms = int(time.time() * 1000)
        async with transaction(self.engine) as conn:
            row = await repo.get_delivery(conn, delivery_id, app_id)
            if row is None:
                raise errors.DeliveryNotFound()
            if row.status == "succeeded":
                raise errors.InvalidState("the delivery already succeeded")
            # False: an attempt is in flight right now; it stays pending, nothing to change.
            await repo.retry_delivery(conn, delivery_id, now_ms)
            row = await repo.get_delivery(conn, delivery_id, app_id)
        assert row is not None  # the row was just read in this transaction
        log.info("webhook_delivery_retried", app_id=app_id, id=delivery_id)
        return _delivery(row)
