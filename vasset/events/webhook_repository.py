"""Every query of webhook_endpoint (the endpoints' calls); only this module runs them.

Also the reads of webhook_delivery that the endpoints' calls answer (listing an endpoint's
deliveries) and the one write they make (an operator's retry); the delivery workers' own
queries are in delivery_repository.py. ``app_id=None`` means any app (the operator's CLI).
Times: unix seconds, except a delivery's next_attempt_at (unix ms).
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ENDPOINT_COLUMNS = (
    "id, app_id, url, events, secret, old_secret, old_secret_until, enabled, disabled_reason,"
    " last_success_at, failing_since, create_time"
)
_DELIVERY_COLUMNS = (
    "d.id, d.endpoint_id, d.event_id, ev.type AS event_type, d.status, d.attempts,"
    " d.last_status, d.last_error, d.next_attempt_at, d.create_time"
)


class EndpointRow(msgspec.Struct):
    """One live (not deleted) endpoint."""

    id: int
    app_id: int
    url: str
    events: str
    secret: str
    old_secret: str | None
    old_secret_until: int | None
    enabled: bool
    disabled_reason: str | None
    last_success_at: int | None
    failing_since: int | None
    create_time: int


class DeliveryRow(msgspec.Struct):
    """One delivery as the endpoints' calls show it (event_type: None once the event is gone)."""

    id: int
    endpoint_id: int
    event_id: int
    event_type: str | None
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: int
    create_time: int


def _owned(app_id: int | None, column: str = "app_id") -> tuple[str, dict[str, Any]]:
    """The WHERE fragment that limits a query to one app (nothing for the operator)."""
    if app_id is None:
        return "", {}
    return f" AND {column} = :app", {"app": app_id}


async def count_endpoints(conn: AsyncConnection, app_id: int) -> int:
    """How many live endpoints an app has."""
    value: int = (
        await conn.execute(
            text("SELECT COUNT(*) FROM webhook_endpoint WHERE app_id = :a AND deleted_at IS NULL"),
            {"a": app_id},
        )
    ).scalar_one()
    return int(value)


async def insert_endpoint(
    conn: AsyncConnection, app_id: int, url: str, events: str, secret: str, now: int
) -> int:
    """Create an enabled endpoint; returns its id."""
    result = await conn.execute(
        text(
            "INSERT INTO webhook_endpoint (app_id, url, events, secret, enabled, create_time)"
            " VALUES (:a, :u, :e, :s, 1, :now)"
        ),
        {"a": app_id, "u": url, "e": events, "s": secret, "now": now},
    )
    return int(result.lastrowid)


async def get_endpoint(
    conn: AsyncConnection, endpoint_id: int, app_id: int | None, *, lock: bool = False
) -> EndpointRow | None:
    """A live endpoint of the app (of any app when app_id is None)."""
    where, params = _owned(app_id)
    row = (
        await conn.execute(
            text(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoint"
                f" WHERE id = :id AND deleted_at IS NULL{where}" + (" FOR UPDATE" if lock else "")
            ),
            {"id": endpoint_id, **params},
        )
    ).first()
    return EndpointRow(**dict(row._mapping)) if row is not None else None


async def list_endpoints(conn: AsyncConnection, app_id: int) -> list[EndpointRow]:
    """An app's live endpoints, oldest first."""
    rows = await conn.execute(
        text(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoint"
            " WHERE app_id = :a AND deleted_at IS NULL ORDER BY id"
        ),
        {"a": app_id},
    )
    return [EndpointRow(**dict(r._mapping)) for r in rows]


async def delete_endpoint(
    conn: AsyncConnection, endpoint_id: int, app_id: int | None, now: int
) -> bool:
    """Mark a live endpoint deleted (its pending deliveries are then dropped by the workers)."""
    where, params = _owned(app_id)
    result = await conn.execute(
        text(
            "UPDATE webhook_endpoint SET deleted_at = :now, enabled = 0"
            f" WHERE id = :id AND deleted_at IS NULL{where}"
        ),
        {"id": endpoint_id, "now": now, **params},
    )
    return bool(result.rowcount)


async def rotate_secret(
    conn: AsyncConnection, endpoint_id: int, secret: str, old_until: int
) -> None:
    """Make secret the endpoint's secret; the current one keeps signing until old_until."""
    await conn.execute(
        text(
            "UPDATE webhook_endpoint SET old_secret = secret, old_secret_until = :until,"
            " secret = :s WHERE id = :id"
        ),
        {"id": endpoint_id, "s": secret, "until": old_until},
    )


async def list_deliveries(
    conn: AsyncConnection, endpoint_id: int, status: str | None, before: int | None, limit: int
) -> list[DeliveryRow]:
    """An endpoint's deliveries, newest first (ids below before, of one status if given)."""
    sql = (
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_delivery d"
        " LEFT JOIN event ev ON ev.id = d.event_id WHERE d.endpoint_id = :e"
    )
    params: dict[str, Any] = {"e": endpoint_id, "lim": limit}
    if status is not None:
        sql += " AND d.status = :st"
        params["st"] = status
    if before is not None:
        sql += " AND d.id < :before"
        params["before"] = before
    rows = await conn.execute(text(sql + " ORDER BY d.id DESC LIMIT :lim"), params)
    return [DeliveryRow(**dict(r._mapping)) for r in rows]


async def get_delivery(
    conn: AsyncConnection, delivery_id: int, app_id: int | None
) -> DeliveryRow | None:
    """A delivery of a live endpoint of the app (of any app when app_id is None)."""
    where, params = _owned(app_id, "d.app_id")
    row = (
        await conn.execute(
            text(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_delivery d"
                " JOIN webhook_endpoint e ON e.id = d.endpoint_id AND e.deleted_at IS NULL"
                f" LEFT JOIN event ev ON ev.id = d.event_id WHERE d.id = :id{where}"
            ),
            {"id": delivery_id, **params},
        )
    ).first()
    return DeliveryRow(**dict(row._mapping)) if row is not None else None


async def retry_delivery(conn: AsyncConnection, delivery_id: int, now_ms: int) -> bool:
    """Make a failed or pending delivery due now, attempts kept; False while one is in flight."""
    # A leased row is being attempted right now: resetting it would send it twice at once.
    result = await conn.execute(
        text(
            "UPDATE webhook_delivery SET status = 'pending', next_attempt_at = :now,"
            " lease_owner = NULL, lease_until = NULL, update_time = :sec"
            " WHERE id = :id AND status IN ('pending', 'failed')"
            " AND (lease_until IS NULL OR lease_until < :now)"
        ),
        {"id": delivery_id, "now": now_ms, "sec": now_ms // 1000},
    )
    return bool(result.rowcount)
