"""The upload domain: init, parts, whole-file ranges, resume, and verified completion."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vasset import errors
from vasset.auth.verify import App, new_upload_token, token_matches
from vasset.db import transaction
from vasset.metrics.registry import metrics
from vasset.playback.policy import policy_values
from vasset.settings import Settings
from vasset.storage import keys
from vasset.storage.base import BlobStore, PartInfo
from vasset.templates.service import record_for_video
from vasset.upload import md5state
from vasset.upload import repository as repo
from vasset.upload.answers import init_answer, with_outputs
from vasset.upload.completion import EnqueueHook
from vasset.upload.md5state import ResumableMD5
from vasset.upload.names import decode_file_name
from vasset.upload.partlocks import PartLocks
from vasset.upload.repository import UploadRow
from vasset.upload.state import ENDED_BADLY, UploadStatus
from vasset.upload.stream import BodyReader, PartSink
from vasset.upload.wholefile import WholeFile
from vasset.videos import repository as videos
from vasset.videos.sharing import shared_source_columns
from vasset.videos.state import VideoStatus

__all__ = ["MD5_RE", "EnqueueHook", "UploadService", "check_md5"]

log = structlog.get_logger(__name__)

MD5_RE = re.compile(r"^[0-9a-fA-F]{32}\Z")


def check_md5(value: str | None, name: str = "hash") -> str | None:
    """A lowercase MD5 hex, or InvalidParameter."""
    if value is None:
        return None
    if not MD5_RE.match(value):
        raise errors.InvalidParameter(f"{name} must be 32 hex digits (MD5)", parameter=name)
    return value.lower()


class UploadService(WholeFile):
    """Every upload call's decisions; HTTP parsing happens before, storage below."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: BlobStore,
        settings: Settings,
        enqueue_transcode: EnqueueHook | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.enqueue_transcode = enqueue_transcode
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="upload-hash")
        self.part_locks = PartLocks()
        # Called after a transaction that enqueued a transcode commits (wakes a worker).
        self.after_enqueue: Callable[[], Awaitable[None]] | None = None

    # limits
    def limits(self) -> dict:
        """The limits init checks against."""
        s = self.settings
        return {
            "max_file_size": s.max_file_size,
            "min_part_size": max(s.min_part_size, self.store.min_part_size),
            "max_part_size": s.max_part_size,
            "max_part_count": s.max_part_count,
            "upload_ttl": s.upload_ttl,
        }

    def smallest_part_size(self, fsize: int) -> int:
        """The smallest psize that fits fsize within every limit."""
        lim = self.limits()
        return max(lim["min_part_size"], math.ceil(fsize / lim["max_part_count"]))

    def check_sizes(self, fsize: int, psize: int) -> int:
        """Validate fsize and psize; returns the part count."""
        lim = self.limits()
        if fsize <= 0:
            raise errors.InvalidParameter(
                "fsize must be a positive number of bytes", parameter="fsize"
            )
        if fsize > lim["max_file_size"]:
            raise errors.EntityTooLarge(
                f"fsize {fsize} exceeds the limit of {lim['max_file_size']} bytes",
                max_file_size=lim["max_file_size"],
            )
        if psize <= 0:
            raise errors.InvalidPartSize("psize must be a positive number of bytes")
        smallest = self.smallest_part_size(fsize)
        part_count = math.ceil(fsize / psize)
        if part_count > lim["max_part_count"] or (part_count > 1 and psize < lim["min_part_size"]):
            raise errors.InvalidPartSize(
                f"psize {psize} is too small for fsize {fsize}: the smallest acceptable psize is "
                f"{smallest}",
                min_part_size=smallest,
            )
        if psize > lim["max_part_size"] and part_count > 1:
            raise errors.InvalidPartSize(
                f"psize exceeds the maximum part size of {lim['max_part_size']}",
                max_part_size=lim["max_part_size"],
            )
        return part_count

    # init
    async def init(
        self,
        app: App,
        fn: str,
        fsize: int,
        psize: int,
        md5: str | None,
        auto: bool,
        priority: int,
        direct: bool = False,
        ttl: int | None = None,
        playback_policy: str | None = None,
        options: str | None = None,
    ) -> dict:
        """Start an upload, or finish it at once when verified bytes with that MD5 exist.

        ttl: seconds the video lives (None: the app's default, else kept); playback_policy:
        signed (None, the default) or public; options: the stored TranscodeOptions (JSON) of
        the automatic transcode (template=).
        """
        name = decode_file_name(fn)
        md5 = check_md5(md5)
        part_count = self.check_sizes(fsize, psize)
        if md5 is not None:
            instant = await self._instant(
                app, name, fsize, md5, auto, priority, ttl, playback_policy, options
            )
            if instant is not None:
                return instant
        now = int(time.time())
        token, token_hash = new_upload_token()
        upload_id = keys.new_nonce() + keys.new_nonce()
        expires_at = now + self.settings.upload_ttl
        key, multipart_id = "", None
        try:
            # One transaction around the storage call: if recording the upload fails, the
            # video row is rolled back and the multipart upload aborted (no orphan of either).
            async with transaction(self.engine) as conn:
                vid = await self.new_video(
                    conn, app.id, name, fsize, priority, ttl, playback_policy
                )
                await record_for_video(conn, vid, options)
                key = keys.source_key(app.id, vid, keys.new_nonce())
                multipart_id = await self.store.create_multipart(key)
                await videos.update_video(conn, vid, storage_uri=key)
                await repo.insert_upload(
                    conn,
                    upload_id=upload_id,
                    token_hash=token_hash,
                    app_id=app.id,
                    video_id=vid,
                    file_size=fsize,
                    part_size=psize,
                    part_count=part_count,
                    client_md5=md5,
                    storage_key=key,
                    multipart_id=multipart_id,
                    direct=int(direct),
                    auto_transcode=int(auto),
                    task_priority=priority,
                    expires_at=expires_at,
                )
        except BaseException:
            if multipart_id is not None:
                await asyncio.shield(self.abort_quietly(key, multipart_id))
            raise
        log.info("upload_started", upload_id=upload_id, vid=vid, size=fsize, parts=part_count)
        return init_answer(
            upload_id=upload_id,
            vid=vid,
            size=fsize,
            md5=md5,
            part_size=psize,
            part_count=part_count,
            expires_at=expires_at,
            upload_token=token,
        )

    async def abort_quietly(self, key: str, multipart_id: str) -> None:
        try:
            await self.store.abort_multipart(key, multipart_id)
        except Exception as exc:  # the janitor aborts what is left; the caller's error matters
            log.warning("multipart_abort_failed", key=key, error=repr(exc))

    async def new_video(
        self,
        conn: AsyncConnection,
        app_id: int,
        name: str,
        size: int,
        priority: int,
        ttl: int | None = None,
        playback_policy: str | None = None,
    ) -> int:
        """Insert the video row of a new upload (status uploading); returns its vid."""
        return await videos.insert_video(
            conn,
            app_id=app_id,
            source_name=name,
            file_size=size,
            status=VideoStatus.UPLOADING.value,
            task_priority=priority,
            image_count=self.settings.image_count,
            ttl=ttl,
            **policy_values(playback_policy),
        )

    async def _instant(
        self,
        app: App,
        name: str,
        fsize: int,
        md5: str,
        auto: bool,
        priority: int,
        ttl: int | None,
        playback_policy: str | None = None,
        options: str | None = None,
    ) -> dict | None:
        async with transaction(self.engine) as conn:
            source = await videos.find_instant_source(conn, app.id, md5, fsize)
            if source is None:
                return None
            vid = await videos.insert_video(
                conn,
                app_id=app.id,
                source_name=name,
                **shared_source_columns(source),
                task_priority=priority,
                image_count=self.settings.image_count,
                media_info=source.media_info,
                ttl=ttl,
                **policy_values(playback_policy),
            )
            await record_for_video(conn, vid, options)
            outputs: list[dict] = []
            if auto and self.enqueue_transcode is not None:
                outputs = await self.enqueue_transcode(conn, app.id, vid, priority)
        if auto and self.after_enqueue is not None:
            await self.after_enqueue()
        log.info("upload_instant", vid=vid, source_vid=source.id, size=fsize)
        answer = {"vid": vid, "status": "uploaded", "instant": True, "size": fsize, "md5": md5}
        return with_outputs(answer, outputs)

    # lookups and authorization
    async def load(self, upload_id: str, app: App | None, token: str | None) -> UploadRow:
        """The upload if this caller may touch it, else UploadNotFound or InvalidUploadToken."""
        async with transaction(self.engine) as conn:
            row = await repo.get_upload(conn, upload_id)
        if row is None:
            raise errors.UploadNotFound()
        if app is not None:
            if row.app_id != app.id:
                raise errors.UploadNotFound()
        elif token is None or not token_matches(token, row.token_hash):
            raise errors.InvalidUploadToken()
        if row.status == UploadStatus.EXPIRED or row.expired():
            raise errors.UploadNotFound("the upload has expired")
        return row

    def check_writable(self, row: UploadRow) -> None:
        if row.status == UploadStatus.UPLOADED:
            raise errors.UploadCompleted(vid=row.video_id)
        if row.status in ENDED_BADLY:
            raise errors.UploadAborted(vid=row.video_id)

    # part mode
    async def put_part(
        self,
        row: UploadRow,
        pseq: int,
        md5: str | None,
        content_length: int | None,
        chunks: AsyncIterator[bytes],
    ) -> dict:
        """Store one part completely or not at all; completes the upload with the last part."""
        md5 = check_md5(md5)
        if not 1 <= pseq <= row.part_count:
            raise errors.InvalidParameter(
                f"pseq must be between 1 and {row.part_count}", parameter="pseq"
            )
        expected = row.part_length(pseq)
        if content_length is None:
            raise errors.InvalidPartSize("Content-Length is required for a part")
        if content_length != expected:
            raise errors.InvalidPartSize(
                f"part {pseq} must be exactly {expected} bytes, Content-Length says "
                f"{content_length}",
                expected_size=expected,
            )
        if row.status == UploadStatus.COMPLETING:
            return await self.await_completion(row)
        if row.status == UploadStatus.UPLOADED:
            return await self.resent_after_completion(row, pseq, md5, expected, BodyReader(chunks))
        self.check_writable(row)
        reader = BodyReader(chunks)
        if await self._store_once(row, pseq, md5, expected, reader) is None:
            # Idempotent re-send: the stored bytes stay; the body is read and dropped.
            await reader.drain()
        return await self._after_part(row, pseq)

    async def _store_once(
        self, row: UploadRow, pseq: int, md5: str | None, size: int, reader: BodyReader
    ) -> PartInfo | None:
        """Store and record the part unless it is recorded already (then None: skip its bytes)."""
        # A second writer of the part waits here, on the loop: it holds no storage thread,
        # and once the first writer is done it finds the part recorded.
        async with self.part_locks.hold(row.upload_id, pseq):
            async with transaction(self.engine) as conn:
                if await repo.has_part(conn, row.id, pseq):
                    return None
                fresh = await repo.get_upload(conn, row.upload_id)
            if fresh is None:
                raise errors.UploadNotFound()
            self.check_writable(fresh)
            info, advanced = await self._store_part(fresh, pseq, md5, size, reader)
            async with transaction(self.engine) as conn:
                await repo.record_part(conn, row.id, pseq, info.size, info.etag)
                if advanced is not None:
                    await repo.advance_md5(conn, row.id, pseq, advanced)
        return info

    async def _store_part(
        self, row: UploadRow, pseq: int, md5: str | None, size: int, reader: BodyReader
    ) -> tuple[PartInfo, bytes | None]:
        """Stream one part into storage; returns its info and the advanced MD5 state, if any."""
        whole = None
        if row.md5_parts == pseq - 1 and md5state.available():
            whole = ResumableMD5(row.md5_state)
        writer = await self.store.open_part(
            row.storage_key, row.multipart_id, pseq, (pseq - 1) * row.part_size, size
        )
        # One MD5 pass per byte when possible: an in-order part without a declared hash is
        # covered by the whole-file MD5, so its own MD5 is not computed.
        sink = PartSink(writer, size, whole, part_md5=md5 is not None or whole is None)
        try:
            complete = await sink.fill(reader)
            metrics().upload_bytes_received.inc(sink.received)
            if not complete:
                raise errors.IncompleteBody(
                    f"part {pseq} ended after {sink.received} of {size} bytes; nothing was stored"
                )
            got = sink.md5.hexdigest() if sink.md5 is not None else None
            if md5 is not None and got != md5:
                raise errors.InvalidDigest(
                    f"part {pseq} has MD5 {got}, the hash parameter says {md5}; nothing was stored"
                )
            info = await writer.commit(got)
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        advanced = whole.save() if whole is not None and writer.existing is None else None
        log.info("part_stored", upload_id=row.upload_id, pseq=pseq, size=info.size)
        return info, advanced

    async def _after_part(self, row: UploadRow, pseq: int) -> dict:
        async with transaction(self.engine) as conn:
            received = await repo.count_parts(conn, row.id)
        if received >= row.part_count:
            return await self.complete(row)
        return {
            "upload_id": row.upload_id,
            "pseq": pseq,
            "received": received,
            "part_count": row.part_count,
        }
