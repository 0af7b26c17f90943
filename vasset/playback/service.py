"""Building play URL and snapshot answers for one app's video."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from vasset import errors
from vasset.captions.repository import captions_of as caption_rows
from vasset.db import transaction
from vasset.playback import audio, policy, urls
from vasset.playback.secret import url_secret
from vasset.playback.thumbnails import Thumbnails
from vasset.videos import repository as videos
from vasset.videos import snapshot_repository
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context


class PlaybackService:
    """Signs URLs for renditions and snapshots (OSS presigned, CDN, or the API's /play)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._secret: bytes | None = None
        # (app, vid) -> (expiry, playable tuple, answers built from it by (definition, format,
        # expires_at)): players ask again within the second, and their answer is the same.
        self._cache: dict[tuple[int, int], tuple[float, tuple, dict]] = {}
        # Reads in flight, shared by every request that misses the same video meanwhile.
        self._reads: dict[tuple[int, int], asyncio.Future] = {}
        self._forgets = 0  # bumped by forget(): a read that overlapped one is not cached
        self.thumbnails = Thumbnails(ctx)

    async def secret(self) -> bytes:
        """The URL secret, loaded once per process."""
        if self._secret is None:
            self._secret = await url_secret(self.ctx.engine)
        return self._secret

    def expiry(self, expires: int | None) -> int:
        """Absolute expiry from the requested lifetime, capped by the configured maximum."""
        s = self.ctx.settings
        lifetime = s.url_expires_default if expires is None else expires
        if lifetime <= 0:
            raise errors.InvalidParameter("expires must be a positive number of seconds")
        return int(time.time()) + min(lifetime, s.url_expires_max)

    async def sign(self, key: str, expires_at: int, via_api: bool = False) -> str:
        """A URL that reads key until expires_at without the app's credentials."""
        s = self.ctx.settings
        if not via_api:
            if s.cdn_domain and s.cdn_auth_key:
                return urls.cdn_type_a(s.cdn_domain, key, s.cdn_auth_key, expires_at)
            presigned = self.ctx.store.presign_get(key, expires_at)
            if presigned:
                return presigned
        return s.public_url.rstrip("/") + urls.play_path(await self.secret(), key, expires_at)

    async def playurl(
        self,
        app_id: int,
        vid: int,
        definition: str | None,
        fmt: str | None,
        expires: int | None,
    ) -> dict:
        """The playurl answer of API.md."""
        if fmt is not None and fmt not in ("mp4", "hls", "m4a"):
            raise errors.InvalidParameter("format must be mp4, hls or m4a", parameter="format")
        expires_at = self.expiry(expires)
        (video, renditions, cover_key, captions), answers = await self._playable(app_id, vid)
        memo = (definition, fmt, expires_at)
        if (answer := answers.get(memo)) is not None:
            return answer
        if not renditions:
            raise errors.VideoNotPlayable(status=video.status)
        details = json.loads(video.media_info or "{}")
        play_urls = []
        mp4s = [r for r in renditions if r.format == "mp4"]
        for r in mp4s:
            if definition and r.definition != definition:
                continue
            if fmt not in (None, "mp4"):
                continue
            extra = json.loads(r.media_info or "{}")
            url, until = await policy.object_url(self, video, r.storage_uri, expires_at)
            play_urls.append(
                {
                    "definition": r.definition,
                    "format": "mp4",
                    "url": url,
                    "width": r.video_width,
                    "height": r.video_height,
                    "bitrate": extra.get("bitrate"),
                    "size": r.file_size,
                    "expires_at": until,
                }
            )
        for r in audio.m4a_renditions(video, renditions, definition, fmt):
            url, until = await policy.object_url(self, video, r.storage_uri or "", expires_at)
            play_urls.append(audio.play_url(r, url, until))
        master = details.get("hls_master")
        has_hls = any(r.format == "hls" for r in renditions)
        if master and has_hls and fmt in (None, "hls") and definition in (None, "auto"):
            top = max(mp4s, key=lambda r: r.video_height or 0) if mp4s else renditions[0]
            # Playlists always go through the API: it signs what they reference.
            url, until = await policy.object_url(self, video, master, expires_at, via_api=True)
            play_urls.append(
                {
                    "definition": "auto",
                    "format": "hls",
                    "url": url,
                    "width": top.video_width,
                    "height": top.video_height,
                    "bitrate": None,
                    "size": None,
                    "expires_at": until,
                }
            )
        if not play_urls:
            raise errors.VideoNotPlayable(
                "no rendition matches the requested definition and format", status=video.status
            )
        cover = (
            (await policy.object_url(self, video, cover_key, expires_at))[0] if cover_key else None
        )
        if len(answers) > 64:
            answers.clear()
        answers[memo] = answer = {
            "vid": vid,
            "status": video.status,
            "duration": video.duration,
            "cover_url": cover,
            "play_urls": play_urls,
            "captions": await self.ctx.captions.entries(captions, expires_at, video),
            "playback_policy": video.playback_policy,
        }
        return answer

    async def _playable(self, app_id: int, vid: int) -> tuple[tuple, dict]:
        """((video, playable renditions, cover key, captions), its answers memo).

        Players ask for play URLs far more often than renditions change; a short per-process
        cache of playable videos keeps MySQL out of most playurl calls. A change shows after at
        most the TTL.
        """
        ttl = self.ctx.settings.playurl_cache_ttl
        key = (app_id, vid)
        if ttl <= 0:
            return await self._read_playable(app_id, vid), {}
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        # When the entry expires every request in flight misses at once: one read serves them
        # all (a herd of reads would queue on the pool and outlive the TTL they refill). The
        # read is its own task, so a client that hangs up does not cancel it for the others.
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(self._read_and_cache(app_id, vid, ttl, self._forgets))
            self._reads[key] = read
            read.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(read)

    def _read_done(self, key: tuple[int, int], read: asyncio.Future) -> None:
        del self._reads[key]
        if not read.cancelled():
            read.exception()  # retrieved here too: every waiter may have gone

    async def _read_and_cache(
        self, app_id: int, vid: int, ttl: float, forgets: int
    ) -> tuple[tuple, dict]:
        value = await self._read_playable(app_id, vid)
        answers: dict = {}
        video, renditions, _, _ = value
        # Only a settled video is cached: while a transcode publishes in steps (a first MP4,
        # then the rest and HLS), a cached early answer would hide the renditions that follow.
        settled = renditions and video.status == VideoStatus.PLAYABLE
        if settled and forgets == self._forgets:
            if len(self._cache) > 10_000:
                self._cache.clear()
            # Stamped after the read: a slow read must not store an entry that is born stale.
            self._cache[(app_id, vid)] = (time.monotonic() + ttl, value, answers)
        return value, answers

    async def _read_playable(self, app_id: int, vid: int) -> tuple:
        """(video, playable renditions, cover key, captions) from MySQL in one transaction."""
        async with transaction(self.ctx.engine) as conn:
            video = await videos.get_video(conn, vid, app_id)
            if video is None or video.parent_id is not None:
                raise errors.VideoNotFound()
            renditions = [
                r for r in await videos.children(conn, vid) if r.status == VideoStatus.PLAYABLE
            ]
            cover = await snapshot_repository.cover_key(conn, vid, video.image_index)
            captions = await caption_rows(conn, vid)
        return video, renditions, cover, captions

    def forget(self, vid: int) -> None:
        """Drop cached answers of a video (this process deleted or changed it)."""
        self._forgets += 1
        for key in [k for k in self._cache if k[1] == vid]:
            del self._cache[key]

    async def snapshots(self, app_id: int, vid: int, expires: int | None) -> dict:
        """The snapshot answer of API.md."""
        expires_at = self.expiry(expires)
        async with transaction(self.ctx.engine) as conn:
            video = await videos.get_video(conn, vid, app_id)
            rows = await snapshot_repository.snapshots(conn, vid) if video else []
        if video is None or video.parent_id is not None:
            raise errors.VideoNotFound()
        snapshots = []
        for snap in rows:
            url, until = await policy.object_url(self, video, snap.storage_uri, expires_at)
            snapshots.append(
                {
                    "index": snap.image_index,
                    "time": snap.time_ms,
                    "url": url,
                    "width": snap.width,
                    "height": snap.height,
                    "expires_at": until,
                }
            )
        return {"vid": vid, "cover_index": video.image_index, "snapshots": snapshots}
