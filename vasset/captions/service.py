"""Captions of a video: store, list with signed URLs, delete; removed with their video.

A caption file is stored under a fresh key on every PUT (``captions/{vid}/{nonce}.vtt``), then
the row is pointed at it in one transaction that holds the video row's lock; the object it
replaced is removed after the commit. Readers therefore see the old file or the new one, never
a half-written one, and a PUT racing the video's deletion either lands before it (and is
removed with the video) or finds the video gone (and removes its own object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.captions import formats
from vasset.captions import repository as repo
from vasset.db import transaction
from vasset.playback import policy
from vasset.storage import keys
from vasset.storage.base import BlobStore
from vasset.videos import repository as videos
from vasset.videos.repository import VideoRow

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)

VTT_TYPE = "text/vtt; charset=utf-8"


class CaptionService:
    """PUT, GET and delete of one app's captions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _video(self, app_id: int, vid: int) -> None:
        async with transaction(self.ctx.engine) as conn:
            video = await videos.get_video(conn, vid, app_id)
        if video is None:
            raise errors.VideoNotFound()

    async def put(self, app_id: int, vid: int, lang: str, label: str | None, body: bytes) -> dict:
        """Validate, store and point the video's captions of lang at the new file."""
        lang = formats.canonical_lang(lang)
        label = formats.label_for(lang, label)
        await self._video(app_id, vid)  # an unknown vid stores nothing
        parsed = formats.parse_captions(body, self.ctx.settings.captions_max_cues)
        data = parsed.vtt.encode()
        key = keys.caption_key(vid, keys.new_nonce())
        await self.ctx.store.put_bytes(key, data, VTT_TYPE)
        try:
            async with transaction(self.ctx.engine) as conn:
                if await videos.get_video(conn, vid, app_id, for_update=True) is None:
                    raise errors.VideoNotFound()  # deleted since the check above
                old = await repo.get_caption(conn, vid, lang, for_update=True)
                await repo.put_caption(conn, vid, lang, label, key, len(data), parsed.cues)
        except BaseException:
            await _remove(self.ctx.store, [key])
            raise
        if old is not None:
            await _remove(self.ctx.store, [old.storage_uri])
        self.ctx.playback.forget(vid)
        log.info(
            "captions_stored",
            vid=vid,
            lang=lang,
            source_format=parsed.source_format,
            cues=parsed.cues,
            replaced=old is not None,
        )
        return {
            "vid": vid,
            "lang": lang,
            "label": label,
            "source_format": parsed.source_format,
            "cues": parsed.cues,
            "size": len(data),
        }

    async def tracks(self, app_id: int, vid: int, expires: int | None) -> dict:
        """The video's captions with signed URLs."""
        expires_at = self.ctx.playback.expiry(expires)
        async with transaction(self.ctx.engine) as conn:
            video = await videos.get_video(conn, vid, app_id)
            rows = await repo.captions_of(conn, vid) if video else []
        if video is None:
            raise errors.VideoNotFound()
        entries = await self.entries(rows, expires_at)
        return {"vid": vid, "captions": [{**e, "expires_at": expires_at} for e in entries]}

    async def entries(
        self, rows: list[repo.CaptionRow], expires_at: int, video: VideoRow | None = None
    ) -> list[dict]:
        """{"lang", "label", "url"} per row: stable URLs for a public video, else signed.

        Always the API's own URLs (never presigned OSS or CDN ones): a page served by the API
        (the console) loads a <track> from its own origin, and other origins get CORS from the
        API, which a bucket would not send. WebVTT files are small.
        """
        out = []
        for row in rows:
            if video is not None:
                url, _ = await policy.object_url(
                    self.ctx.playback, video, row.storage_uri, expires_at, via_api=True
                )
            else:
                url = await self.ctx.playback.sign(row.storage_uri, expires_at, via_api=True)
            out.append({"lang": row.lang, "label": row.label, "url": url})
        return out

    async def delete(self, app_id: int, vid: int, lang: str) -> dict:
        """Remove one language's captions of a video."""
        lang = formats.canonical_lang(lang)
        async with transaction(self.ctx.engine) as conn:
            if await videos.get_video(conn, vid, app_id, for_update=True) is None:
                raise errors.VideoNotFound()
            row = await repo.get_caption(conn, vid, lang, for_update=True)
            if row is None:
                raise errors.CaptionNotFound()
            await repo.delete_caption(conn, vid, lang)
        await _remove(self.ctx.store, [row.storage_uri])
        self.ctx.playback.forget(vid)
        log.info("captions_deleted", vid=vid, lang=lang)
        return {"vid": vid, "lang": lang, "deleted": True}


async def _remove(store: BlobStore, object_keys: list[str]) -> bool:
    """Delete objects; a failure is logged (the janitor retries what rows still name)."""
    try:
        for key in object_keys:
            await store.delete(key)
    except errors.VassetError as exc:
        log.warning("caption_bytes_left", keys=object_keys, error=exc.code)
        return False
    return True


async def remove_video_captions(engine: AsyncEngine, store: BlobStore, vid: int) -> None:
    """After a video's deletion: its caption objects, then their rows (kept until then)."""
    async with transaction(engine) as conn:
        rows = await repo.captions_of(conn, vid)
    if not rows:
        return
    removed = [row.storage_uri for row in rows]
    if await _remove(store, removed):
        async with transaction(engine) as conn:
            await repo.delete_keys(conn, vid, removed)


async def remove_orphans(engine: AsyncEngine, store: BlobStore) -> int:
    """Janitor: captions of deleted videos whose removal failed before; returns how many went."""
    async with transaction(engine) as conn:
        found = await repo.orphaned(conn)
    gone = 0
    for vid, key in found:
        if await _remove(store, [key]):
            async with transaction(engine) as conn:
                await repo.delete_keys(conn, vid, [key])
            gone += 1
    return gone
