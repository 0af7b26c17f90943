"""Every query of app_asset (an app's image assets); only this module runs them."""

from __future__ import annotations

import msgspec
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "id, app_id, kind, storage_key, width, height, size, md5, create_time"


class AssetRow(msgspec.Struct):
    """One live (not deleted) asset."""

    id: int
    app_id: int
    kind: str
    storage_key: str
    width: int
    height: int
    size: int
    md5: str
    create_time: int


async def count_assets(conn: AsyncConnection, app_id: int) -> int:
    """How many live assets an app has."""
    value: int = (
        await conn.execute(
            text("SELECT COUNT(*) FROM app_asset WHERE app_id = :a AND deleted_at IS NULL"),
            {"a": app_id},
        )
    ).scalar_one()
    return int(value)


async def insert_asset(
    conn: AsyncConnection,
    *,
    app_id: int,
    kind: str,
    storage_key: str,
    width: int,
    height: int,
    size: int,
    md5: str,
    now: int,
) -> int:
    """Record a stored asset; returns its id."""
    result = await conn.execute(
        text(
            "INSERT INTO app_asset (app_id, kind, storage_key, width, height, size, md5,"
            " create_time) VALUES (:app, :kind, :key, :w, :h, :size, :md5, :now)"
        ),
        {
            "app": app_id,
            "kind": kind,
            "key": storage_key,
            "w": width,
            "h": height,
            "size": size,
            "md5": md5,
            "now": now,
        },
    )
    return int(result.lastrowid)


async def get_asset(
    conn: AsyncConnection, asset_id: int, app_id: int, *, for_update: bool = False
) -> AssetRow | None:
    """One live asset of an app (another app's, or a deleted one, is None)."""
    lock = " FOR UPDATE" if for_update else ""
    row = (
        (
            await conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM app_asset WHERE id = :id AND app_id = :a"
                    f" AND deleted_at IS NULL{lock}"
                ),
                {"id": asset_id, "a": app_id},
            )
        )
        .mappings()
        .first()
    )
    return msgspec.convert(dict(row), AssetRow) if row is not None else None


async def list_assets(conn: AsyncConnection, app_id: int) -> list[AssetRow]:
    """An app's live assets, oldest first."""
    rows = (
        await conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM app_asset WHERE app_id = :a AND deleted_at IS NULL"
                " ORDER BY id"
            ),
            {"a": app_id},
        )
    ).mappings()
    return [msgspec.convert(dict(r), AssetRow) for r in rows]


async def mark_deleted(conn: AsyncConnection, asset_id: int, now: int) -> None:
    """Hide an asset (the row stays, so a job naming it fails with AssetNotFound)."""
    await conn.execute(
        text("UPDATE app_asset SET deleted_at = :now WHERE id = :id AND deleted_at IS NULL"),
        {"id": asset_id, "now": now},
    )


async def live_keys(conn: AsyncConnection, keys: list[str]) -> set[str]:
    """Which of these storage keys belong to assets that are not deleted."""
    if not keys:
        return set()
    rows = await conn.execute(
        text(
            "SELECT storage_key FROM app_asset WHERE deleted_at IS NULL AND storage_key IN :k"
        ).bindparams(bindparam("k", expanding=True)),
        {"k": keys},
    )
    return {str(r.storage_key) for r in rows}
