"""An app's image assets: validated PNGs in the BlobStore, one app_asset row each.

Storage first, then the row: a failed insert removes the object, so nothing is half-written
(a crash in between leaves an object no row names, which the store keeps but nothing serves).
Deleting an asset is always allowed: jobs already running have their copy; a job that starts
later fails permanently with ``AssetNotFound`` (see docs/API.md, "Image assets").
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.assets import repository as repo
from vasset.assets.png import validate_png
from vasset.db import transaction
from vasset.settings import Settings
from vasset.storage import keys
from vasset.storage.base import BlobStore
from vasset.transcode.options import TranscodeOptions

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)

#: Live assets one app may keep.
MAX_ASSETS = 200


def _asset(row: repo.AssetRow) -> dict[str, Any]:
    return {
        "asset_id": row.id,
        "kind": row.kind,
        "width": row.width,
        "height": row.height,
        "size": row.size,
        "create_time": row.create_time,
    }


async def read_limited(chunks: AsyncIterator[bytes], declared: int | None, limit: int) -> bytes:
    """The whole body, refused with EntityTooLarge as soon as it passes limit bytes."""
    too_large = errors.EntityTooLarge(f"an asset may be at most {limit} bytes")
    if declared is not None and declared > limit:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


class AssetService:
    """The calls of /video/assets, and the worker's fetch of a watermark."""

    def __init__(self, engine: AsyncEngine, store: BlobStore, settings: Settings) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings

    async def put(self, app_id: int, kind: str, data: bytes) -> dict[str, Any]:
        """Validate and store one PNG; answers the new asset."""
        if not data:
            raise errors.InvalidImage("the body is empty; send the PNG's bytes")
        info = validate_png(data, self.settings.asset_max_dimension)
        async with transaction(self.engine) as conn:
            if await repo.count_assets(conn, app_id) >= MAX_ASSETS:
                raise errors.InvalidState(
                    f"an app may keep at most {MAX_ASSETS} assets; delete one first"
                )
        key = keys.asset_key(app_id, keys.new_nonce())
        await self.store.put_bytes(key, data, "image/png")
        now = int(time.time())
        try:
            async with transaction(self.engine) as conn:
                asset_id = await repo.insert_asset(
                    conn,
                    app_id=app_id,
                    kind=kind,
                    storage_key=key,
                    width=info.width,
                    height=info.height,
                    size=len(data),
                    md5=hashlib.md5(data).hexdigest(),
                    now=now,
                )
        except BaseException:
            await self.store.delete(key)
            raise
        log.info("asset_stored", app=app_id, asset=asset_id, kind=kind, size=len(data))
        return {
            "asset_id": asset_id,
            "kind": kind,
            "width": info.width,
            "height": info.height,
            "size": len(data),
            "create_time": now,
        }

    async def listing(self, app_id: int) -> dict[str, Any]:
        """The app's live assets, oldest first."""
        async with transaction(self.engine) as conn:
            rows = await repo.list_assets(conn, app_id)
        return {"assets": [_asset(r) for r in rows]}

    async def delete(self, app_id: int, asset_id: int) -> dict[str, Any]:
        """Hide the asset, then remove its object (another app's: AssetNotFound)."""
        async with transaction(self.engine) as conn:
            row = await repo.get_asset(conn, asset_id, app_id, for_update=True)
            if row is None:
                raise errors.AssetNotFound()
            await repo.mark_deleted(conn, asset_id, int(time.time()))
        await self.store.delete(row.storage_key)
        log.info("asset_deleted", app=app_id, asset=asset_id)
        return {"asset_id": asset_id, "deleted": True}

    async def check(self, app_id: int, asset_id: int) -> None:
        """Raise AssetNotFound unless the app has this live asset (transcode options)."""
        async with transaction(self.engine) as conn:
            if await repo.get_asset(conn, asset_id, app_id) is None:
                raise errors.AssetNotFound(
                    f"no watermark asset {asset_id} (unknown, deleted or another app's)",
                    parameter="watermark",
                )

    async def fetch(self, app_id: int, asset_id: int, target: Path) -> Path:
        """Copy a live asset to a local file for FFmpeg (deleted since queued: AssetNotFound)."""
        async with transaction(self.engine) as conn:
            row = await repo.get_asset(conn, asset_id, app_id)
        if row is None or await self.store.head(row.storage_key) is None:
            raise errors.AssetNotFound(f"the watermark asset {asset_id} was deleted")
        await self.store.download_file(row.storage_key, target)
        return target


async def check_overlays(ctx: Context, app_id: int, options: TranscodeOptions) -> None:
    """Refuse transcode options naming a watermark the app does not have (AssetNotFound)."""
    if options.watermark is not None:
        service = AssetService(ctx.engine, ctx.store, ctx.settings)
        await service.check(app_id, options.watermark.asset_id)


#: An asset object younger than this may still be waiting for its row (put stores it first).
ORPHAN_AGE = 3600


async def remove_orphans(engine: AsyncEngine, store: BlobStore) -> int:
    """Janitor: asset objects without a live row (a crash between store and insert, or a
    delete whose object removal failed), an hour old at least; returns how many went."""
    stored = await store.list_keys("assets/")
    live: set[str] = set()
    for start in range(0, len(stored), 500):
        async with transaction(engine) as conn:
            live |= await repo.live_keys(conn, stored[start : start + 500])
    cutoff = time.time() - ORPHAN_AGE
    gone = 0
    for key in stored:
        if key in live:
            continue
        info = await store.head(key)
        if info is None or info.mtime > cutoff:
            continue
        await store.delete(key)
        log.info("asset_orphan_removed", key=key)
        gone += 1
    return gone
