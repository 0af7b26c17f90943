"""Video calls: status, media info and deletion (reference-counted bytes)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vasset import errors
from vasset.captions.service import remove_video_captions
from vasset.db import transaction
from vasset.errors import FailureCode
from vasset.storage.base import BlobStore
from vasset.storage.keys import output_prefix_of
from vasset.upload import replace
from vasset.upload import repository as uploads
from vasset.upload.state import UploadStatus
from vasset.upload.unfinished import drop_unfinished
from vasset.videos import repository as repo
from vasset.videos import snapshot_repository
from vasset.videos.repository import VideoRow
from vasset.videos.state import Ladder, VideoStatus, ladder_of

log = structlog.get_logger(__name__)


#: Called inside the delete transaction so running jobs of the video get cancelled.
CancelHook = Callable[[AsyncConnection, int], Awaitable[None]]


class VideoService:
    """Reads and deletes videos on behalf of one app at a time."""

    def __init__(
        self, engine: AsyncEngine, store: BlobStore, cancel_jobs: CancelHook | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.cancel_jobs = cancel_jobs

    async def get(self, app_id: int, vid: int) -> VideoRow:
        """A live source video of this app, or VideoNotFound (never a hint it exists elsewhere)."""
        async with transaction(self.engine) as conn:
            video = await repo.get_video(conn, vid, app_id)
        if video is None:
            raise errors.VideoNotFound()
        return video

    async def status(self, app_id: int, vid: int) -> dict:
        """The status answer of API.md."""
        # Renditions first, the video row after (READ COMMITTED): the row then shows at least
        # the publish that made those renditions, so "ladder" never lags behind them.
        async with transaction(self.engine) as conn:
            renditions = await repo.children(conn, vid)
        video = await self.get(app_id, vid)
        playable = any(r.status == VideoStatus.PLAYABLE for r in renditions)
        ladder = ladder_of(json.loads(video.media_info or "{}"), playable)
        return {
            "vid": video.id,
            "status": video.status,
            "playable": playable and ladder is not Ladder.NONE,
            "progress": int(video.progress or 0),
            "error": video.error,
            "delete_at": video.delete_at,
            "ladder": None if ladder is Ladder.NONE else ladder.value,
        }

    async def mediainfo(self, app_id: int, vid: int) -> dict:
        """What is known of the file: name, size, MD5, and probe results once probed."""
        video = await self.get(app_id, vid)
        info = json.loads(video.media_info) if video.media_info else {}
        async with transaction(self.engine) as conn:
            renditions = await repo.children(conn, vid)
        return {
            "vid": video.id,
            "source_name": video.source_name,
            "file_size": video.file_size,
            "md5": video.hash,
            "status": video.status,
            "duration": video.duration,
            "video_width": video.video_width,
            "video_height": video.video_height,
            "video_codec": info.get("video_codec"),
            "audio_codec": info.get("audio_codec"),
            "bitrate": info.get("bitrate"),
            "frame_rate": info.get("frame_rate"),
            "rotation": info.get("rotation"),
            "format": info.get("format"),
            "metadata": json.loads(video.metadata) if video.metadata else None,
            "renditions": [
                {
                    "definition": r.definition,
                    "format": r.format,
                    "width": r.video_width,
                    "height": r.video_height,
                    "size": r.file_size,
                    "bitrate": (json.loads(r.media_info).get("bitrate") if r.media_info else None),
                    "status": r.status,
                }
                for r in renditions
            ],
            "delete_at": video.delete_at,
        }

    async def delete(self, app_id: int, vid: int) -> dict:
        """Delete a video, its renditions and snapshots; shared source bytes survive."""
        async with transaction(self.engine) as conn:
            # The video row first: completions and the queue lock it before its upload and jobs.
            video = await repo.get_video(conn, vid, app_id, for_update=True)
            if video is None:
                raise errors.VideoNotFound()
            renditions = await repo.children(conn, vid)
            await repo.mark_deleted(conn, vid)
            snapshot_keys = await snapshot_repository.delete_snapshots(conn, vid)
            upload = await uploads.open_upload_of_video(conn, vid)
            if upload is not None:
                await uploads.move_upload(
                    conn,
                    upload.id,
                    upload.status,
                    UploadStatus.ABORTED,
                    error=FailureCode.VIDEO_DELETED,
                )
            # A new source still uploading or waiting for its transcode goes with the video.
            dropped = await replace.drop_with_video(conn, vid, upload)
            if self.cancel_jobs is not None:
                await self.cancel_jobs(conn, vid)
            source_refs = (
                await repo.live_references(conn, video.storage_uri) if video.storage_uri else 0
            )
        await self._remove_bytes(video, renditions, snapshot_keys, source_refs)
        if dropped is not None:
            try:
                await replace.remove_dropped(self.engine, self.store, dropped)
            except errors.VassetError as exc:
                log.warning("replacement_bytes_left", vid=vid, error=exc.code)
        await remove_video_captions(self.engine, self.store, vid)
        log.info("video_deleted", vid=vid, shared_source=source_refs > 0)
        return {"vid": vid, "deleted": True}

    async def _remove_bytes(
        self, video: VideoRow, renditions: list[VideoRow], snapshot_keys: list[str], refs: int
    ) -> None:
        """Remove objects nobody references; failures are left to the janitor."""
        try:
            # Renditions, HLS and snapshots of an attempt share one media/ prefix.
            prefixes = {
                output_prefix_of(key)
                for key in [*(r.storage_uri for r in renditions), *snapshot_keys]
                if key
            }
            for prefix in sorted(p for p in prefixes if p):
                await self.store.delete_prefix(prefix)
            if video.storage_uri and refs == 0:
                if video.status == VideoStatus.UPLOADING:
                    async with transaction(self.engine) as conn:
                        multipart_id = await uploads.multipart_id_of_video(conn, video.id)
                    await drop_unfinished(self.store, video.storage_uri, multipart_id)
                await self.store.delete(video.storage_uri)
        except errors.VassetError as exc:
            log.warning("video_bytes_left_for_janitor", vid=video.id, error=exc.code)
