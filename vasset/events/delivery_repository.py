"""Every query of webhook_delivery (claims, leases, outcomes); only this module runs them.

A worker claims due pending rows with SKIP LOCKED and leases them: the claim stamps
lease_owner (one random token per claim) and moves next_attempt_at to the lease's end, so a
leased row is not due again until its lease runs out (a killed worker's rows come back by
themselves). Every outcome is fenced on lease_owner: a worker whose lease was taken over
changes nothing. Times: next_attempt_at and lease_until in unix ms, the rest in unix seconds.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection


class Claimed(msgspec.Struct):
    """A leased delivery with what one attempt needs (its event's body, its endpoint)."""

    id: int
    endpoint_id: int
    event_id: int
    app_id: int
    attempts: int
    body: str
    url: str
    secret: str
    old_secret: str | None
    old_secret_until: int | None
    enabled: bool
    deleted_at: int | None


_CLAIMED = (
    "SELECT d.id, d.endpoint_id, d.event_id, d.app_id, d.attempts, ev.body, e.url, e.secret,"
    " e.old_secret, e.old_secret_until, e.enabled, e.deleted_at FROM webhook_delivery d"
    " JOIN event ev ON ev.id = d.event_id JOIN webhook_endpoint e ON e.id = d.endpoint_id"
    " WHERE d.id IN :ids AND d.lease_owner = :owner ORDER BY d.event_id, d.id"
)


async def claim_due(
    conn: AsyncConnection, owner: str, now_ms: int, lease_ms: int, limit: int
) -> list[Claimed]:
    """Lease up to limit due pending deliveries to owner, oldest event first."""
    # Only webhook_delivery rows are locked (MariaDB has no FOR UPDATE OF): joining here would
    # lock the endpoint row too and serialize every worker behind one busy endpoint.
    rows = await conn.execute(
        text(
            "SELECT id FROM webhook_delivery WHERE status = 'pending' AND next_attempt_at <= :now"
            " ORDER BY next_attempt_at, id LIMIT :lim FOR UPDATE SKIP LOCKED"
        ),
        {"now": now_ms, "lim": limit},
    )
    ids = [int(r.id) for r in rows]
    if not ids:
        return []
    until = now_ms + lease_ms
    await conn.execute(
        text(
            "UPDATE webhook_delivery SET lease_owner = :owner, lease_until = :until,"
            " next_attempt_at = :until WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"owner": owner, "until": until, "ids": ids},
    )
    found = await conn.execute(
        text(_CLAIMED).bindparams(bindparam("ids", expanding=True)), {"ids": ids, "owner": owner}
    )
    claimed = [Claimed(**dict(r._mapping)) for r in found]
    # A delivery whose event the retention already removed has nothing left to send.
    orphans = set(ids) - {c.id for c in claimed}
    if orphans:
        await conn.execute(
            text(
                "UPDATE webhook_delivery SET status = 'failed', last_error = 'event removed',"
                " lease_owner = NULL, lease_until = NULL WHERE id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": sorted(orphans)},
        )
    return claimed


async def mark_succeeded(
    conn: AsyncConnection, done: list[tuple[int, str, int]], now_s: int
) -> int:
    """Settle (delivery id, lease owner, HTTP status) as succeeded; returns how many settled."""
    groups: dict[tuple[str, int], list[int]] = {}
    for delivery_id, owner, status in done:
        groups.setdefault((owner, status), []).append(delivery_id)
    settled = 0
    # One statement per claim batch and status: a batch of successes costs a few round trips.
    for (owner, status), ids in groups.items():
        result = await conn.execute(
            text(
                "UPDATE webhook_delivery SET status = 'succeeded', attempts = attempts + 1,"
                " last_status = :st, last_error = NULL, lease_owner = NULL, lease_until = NULL,"
                " update_time = :now WHERE id IN :ids AND lease_owner = :owner"
                " AND status = 'pending'"
            ).bindparams(bindparam("ids", expanding=True)),
            {"st": status, "now": now_s, "ids": ids, "owner": owner},
        )
        settled += int(result.rowcount or 0)
    return settled


async def endpoints_succeeded(conn: AsyncConnection, endpoint_ids: list[int], now_s: int) -> None:
    """Record a success of each endpoint: it is no longer failing."""
    if not endpoint_ids:
        return
    # Skips rows already up to date, so a busy endpoint's row is written about once a second.
    await conn.execute(
        text(
            "UPDATE webhook_endpoint SET last_success_at = :now, failing_since = NULL"
            " WHERE id IN :ids AND (last_success_at IS NULL OR last_success_at < :now"
            " OR failing_since IS NOT NULL)"
        ).bindparams(bindparam("ids", expanding=True)),
        {"now": now_s, "ids": sorted(set(endpoint_ids))},
    )


async def mark_failed_attempt(
    conn: AsyncConnection,
    delivery_id: int,
    owner: str,
    status: int | None,
    error: str | None,
    next_attempt_ms: int | None,
    now_s: int,
) -> bool:
    """Record a failed attempt: pending again at next_attempt_ms, or failed when None."""
    result = await conn.execute(
        text(
            "UPDATE webhook_delivery SET status = :state, attempts = attempts + 1,"
            " last_status = :st, last_error = :err, lease_owner = NULL, lease_until = NULL,"
            " next_attempt_at = COALESCE(:next, next_attempt_at), update_time = :now"
            " WHERE id = :id AND lease_owner = :owner AND status = 'pending'"
        ),
        {
            "state": "pending" if next_attempt_ms is not None else "failed",
            "st": status,
            "err": (error or "")[:255] or None,
            "next": next_attempt_ms,
            "now": now_s,
            "id": delivery_id,
            "owner": owner,
        },
    )
    return result.rowcount == 1


async def endpoint_failed(conn: AsyncConnection, endpoint_id: int, now_s: int) -> int | None:
    """Record a failure of an endpoint; returns since when it has been failing (None: gone)."""
    await conn.execute(
        text(
            "UPDATE webhook_endpoint SET failing_since = COALESCE(failing_since, :now)"
            " WHERE id = :id"
        ),
        {"now": now_s, "id": endpoint_id},
    )
    since = (
        await conn.execute(
            text("SELECT failing_since FROM webhook_endpoint WHERE id = :id"), {"id": endpoint_id}
        )
    ).scalar_one_or_none()
    return int(since) if since is not None else None


async def disable_endpoint(conn: AsyncConnection, endpoint_id: int, reason: str) -> bool:
    """Disable an endpoint (its pending deliveries are failed when next claimed)."""
    result = await conn.execute(
        text(
            "UPDATE webhook_endpoint SET enabled = 0, disabled_reason = :r"
            " WHERE id = :id AND enabled = 1"
        ),
        {"r": reason[:255], "id": endpoint_id},
    )
    return result.rowcount == 1


async def fail_unsendable(
    conn: AsyncConnection, delivery_id: int, owner: str, error: str, now_s: int
) -> None:
    """Settle a delivery that is not attempted (its endpoint is disabled or deleted)."""
    await conn.execute(
        text(
            "UPDATE webhook_delivery SET status = 'failed', last_error = :err,"
            " lease_owner = NULL, lease_until = NULL, update_time = :now"
            " WHERE id = :id AND lease_owner = :owner AND status = 'pending'"
        ),
        {"err": error[:255], "now": now_s, "id": delivery_id, "owner": owner},
    )


async def give_back(conn: AsyncConnection, leases: list[tuple[int, str]], now_ms: int) -> None:
    """Release leases of deliveries not attempted (shutdown): due again at once."""
    for delivery_id, owner in leases:
        await conn.execute(
            text(
                "UPDATE webhook_delivery SET lease_owner = NULL, lease_until = NULL,"
                " next_attempt_at = :now WHERE id = :id AND lease_owner = :owner"
                " AND status = 'pending'"
            ),
            {"now": now_ms, "id": delivery_id, "owner": owner},
        )


async def drop_settled_before(conn: AsyncConnection, before_s: int, limit: int = 5000) -> int:
    """Remove succeeded and failed deliveries created before before_s (retention)."""
    result = await conn.execute(
        text(
            "DELETE FROM webhook_delivery WHERE create_time < :t"
            " AND status IN ('succeeded', 'failed') LIMIT :lim"
        ),
        {"t": before_s, "lim": limit},
    )
    return int(result.rowcount or 0)
