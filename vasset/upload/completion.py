"""How uploads end: resume, verified completion (the video is published once), and expiry.

A mixin of UploadService (split out for size): the request that stores the last part, a
resume that finds every part stored, and a direct upload's confirmation all end here.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.errors import FailureCode
from vasset.lifecycle import LostRace
from vasset.metrics.registry import metrics
from vasset.settings import Settings
from vasset.storage.base import BlobStore, PartInfo
from vasset.upload import claims, md5state, replace
from vasset.upload import repository as repo
from vasset.upload.answers import with_outputs
from vasset.upload.md5state import ResumableMD5
from vasset.upload.repository import UploadRow
from vasset.upload.state import ENDED_BADLY, UploadStatus
from vasset.upload.stream import BodyReader
from vasset.upload.unfinished import drop_unfinished
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

log = structlog.get_logger(__name__)

U = UploadStatus
V = VideoStatus

#: Called inside the completing transaction when a video is uploaded with auto=1.
#: Queues a completed upload's transcode: (conn, app_id, vid, priority) -> the template
#: outputs ([{"template", "vid"}], empty unless the upload named several templates).
EnqueueHook = Callable[[AsyncConnection, int, int, int], Awaitable[list[dict]]]


class Completion:
    """Resume, completion and expiry; UploadService provides the attributes."""

    engine: AsyncEngine
    store: BlobStore
    settings: Settings
    pool: ThreadPoolExecutor
    enqueue_transcode: EnqueueHook | None
    after_enqueue: Callable[[], Awaitable[None]] | None

    async def _load_quiet(self, upload_id: str) -> UploadRow:
        async with transaction(self.engine) as conn:
            row = await repo.get_upload(conn, upload_id)
        assert row is not None
        return row

    @staticmethod
    def _offset(row: UploadRow, recorded: dict[int, tuple[int, str]]) -> int:
        """Bytes durably stored contiguously from byte 0."""
        offset = 0
        for pseq in range(1, row.part_count + 1):
            if pseq not in recorded:
                break
            offset += row.part_length(pseq)
        return offset

    # resume
    async def resume(self, row: UploadRow) -> dict:
        """Which parts are missing, reconciled with what storage actually holds."""
        if row.status == U.UPLOADED:
            return self.uploaded_answer(row)
        if row.status in ENDED_BADLY:
            return {
                "upload_id": row.upload_id,
                "status": "upload_failed",
                "vid": row.video_id,
                "error": row.error,
            }
        recorded = await self._reconcile(row)
        if row.status == U.UPLOADING and len(recorded) >= row.part_count:
            # Every part is stored but completion never ran (e.g. the process died): finish now.
            return await self.complete(row)
        missing = [p for p in range(1, row.part_count + 1) if p not in recorded]
        return {
            "upload_id": row.upload_id,
            "vid": row.video_id,
            "status": "uploading",
            "size": row.file_size,
            "part_size": row.part_size,
            "part_count": row.part_count,
            "received": len(recorded),
            "missing": missing,
            "offset": self._offset(row, recorded),
            "expires_at": row.expires_at,
        }

    async def _reconcile(self, row: UploadRow) -> dict[int, tuple[int, str]]:
        """Add parts that storage holds but the record lacks (a crash, or direct-upload parts)."""
        async with transaction(self.engine) as conn:
            recorded = await repo.list_parts(conn, row.id)
        if len(recorded) >= row.part_count:
            return recorded
        stored = await self.store.list_parts(row.storage_key, row.multipart_id)
        found = [
            p
            for p in stored
            if p.number not in recorded
            and 1 <= p.number <= row.part_count
            and p.size == row.part_length(p.number)
        ]
        if found:
            async with transaction(self.engine) as conn:
                for part in found:
                    await repo.record_part(conn, row.id, part.number, part.size, part.etag)
            for part in found:
                recorded[part.number] = (part.size, part.etag)
            log.info("parts_recovered", upload_id=row.upload_id, parts=[p.number for p in found])
        return recorded

    # expiry
    async def expire(self, now: int | None = None) -> int:
        """Expire unfinished uploads past their TTL and drop their parts; returns how many."""
        now = int(now or time.time())
        count = 0
        skipped: set[int] = set()
        while True:
            async with transaction(self.engine) as conn:
                rows = await repo.expired_uploads(conn, now)
            rows = [r for r in rows if r.id not in skipped]
            if not rows:
                return count
            for row in rows:
                await drop_unfinished(self.store, row.storage_key, row.multipart_id)
                try:
                    async with transaction(self.engine) as conn:
                        await videos.lock_video(conn, row.video_id)
                        await repo.move_upload(conn, row.id, row.status, U.EXPIRED)
                        # A tus partial upload has no video of its own; a replacement's
                        # video keeps its old source and renditions.
                        if row.video_id and not await replace.ended(conn, row):
                            await videos.move_video(
                                conn,
                                row.video_id,
                                V.UPLOADING,
                                V.UPLOAD_FAILED,
                                error=FailureCode.UPLOAD_EXPIRED,
                            )
                except LostRace:
                    # A completion or a delete ended it since the read: nothing left to expire.
                    log.info("upload_expiry_skipped", upload_id=row.upload_id, vid=row.video_id)
                    skipped.add(row.id)
                    continue
                log.info("upload_expired", upload_id=row.upload_id, vid=row.video_id)
                metrics().uploads_failed.labels("expired").inc()
                count += 1

    async def await_completion(self, row: UploadRow, wait: float = 60.0) -> dict:
        """Another request is completing: wait for its answer, or take over a dead one."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            current = await self._load_quiet(row.upload_id)
            if current.status == U.UPLOADED:
                return self.uploaded_answer(current)
            if current.status == U.FAILED:
                raise errors.UploadAborted(current.error or "the upload failed verification")
            if current.status == U.UPLOADING:
                return await self.resume(current)
            if current.status == U.COMPLETING and (current.completing_at or 0) < (
                time.time() - self.settings.completion_lease
            ):
                return await self.complete(current)
            await asyncio.sleep(0.2)
        raise errors.UploadInProgress()

    async def resent_after_completion(
        self, row: UploadRow, pseq: int, md5: str | None, size: int, reader: BodyReader
    ) -> dict:
        """A part re-sent after completion (its answer was lost on the way back).

        The completion answer again when the body is the stored part, else UploadCompleted.
        """
        loop = asyncio.get_running_loop()
        body = hashlib.md5()
        received = 0
        while received < size:
            data = await reader.read(min(size - received, 4 << 20))
            if not data:
                raise errors.IncompleteBody(f"part {pseq} ended after {received} of {size} bytes")
            await loop.run_in_executor(self.pool, body.update, data)
            received += len(data)
        got = body.hexdigest()
        if md5 is not None and got != md5:
            raise errors.InvalidDigest(
                f"part {pseq} has MD5 {got}, the hash parameter says {md5}; nothing was stored"
            )
        async with transaction(self.engine) as conn:
            recorded = await repo.list_parts(conn, row.id)
        stored_md5 = recorded.get(pseq, (0, ""))[1] or await self._stored_part_md5(row, pseq, size)
        if got != stored_md5:
            raise errors.UploadCompleted(
                f"the upload is complete and part {pseq} differs from the stored one",
                vid=row.video_id,
            )
        log.info("part_resent_after_completion", upload_id=row.upload_id, pseq=pseq)
        return self.uploaded_answer(row)

    async def _stored_part_md5(self, row: UploadRow, pseq: int, size: int) -> str:
        """MD5 of a part's bytes in the completed object (parts recorded without their own MD5)."""
        loop = asyncio.get_running_loop()
        digest = hashlib.md5()
        start = (pseq - 1) * row.part_size
        async for chunk in self.store.read(row.storage_key, start, start + size - 1, 4 << 20):
            await loop.run_in_executor(self.pool, digest.update, chunk)
        return digest.hexdigest()

    def uploaded_answer(self, row: UploadRow) -> dict:
        return {
            "upload_id": row.upload_id,
            "vid": row.video_id,
            "status": "uploaded",
            "md5": row.client_md5,
            "size": row.file_size,
        }

    async def complete(self, row: UploadRow) -> dict:
        """Verify every part and the whole file, then publish the video (exactly once)."""
        lease = self.settings.completion_lease
        try:
            claimed_at = await claims.take(self.engine, row.id, lease)
        except LostRace:
            # Another request is completing (or just completed): its answer is ours too.
            return await self.await_completion(row)
        try:
            async with claims.kept_fresh(self.engine, row.id, claimed_at, lease):
                return await self._complete_taken(row)
        except errors.VerificationFailed:
            raise
        except LostRace as lost:
            # A delete (or expiry) ended the upload while it was being completed.
            log.warning("upload_completion_lost", upload_id=row.upload_id, found=lost.found)
            raise errors.UploadAborted(vid=row.video_id) from None
        except BaseException:
            await self.give_back(row)
            raise

    async def give_back(self, row: UploadRow) -> None:
        """Return a completion that stopped half-way, so a retry (or resume) can complete it."""
        try:
            async with transaction(self.engine) as conn:
                await repo.move_upload(conn, row.id, U.COMPLETING, U.UPLOADING, completing_at=None)
        except LostRace:
            pass  # a delete or expiry ended the upload meanwhile: nothing to give back

    async def _complete_taken(self, row: UploadRow) -> dict:
        row = await self._load_quiet(row.upload_id)
        async with transaction(self.engine) as conn:
            recorded = await repo.list_parts(conn, row.id)
        # 1. part count and sizes, against the durable record
        missing = [p for p in range(1, row.part_count + 1) if p not in recorded]
        if missing:
            raise errors.InvalidState(f"parts {missing[:20]} are missing")
        total = sum(recorded[p][0] for p in range(1, row.part_count + 1))
        bad_size = [p for p in recorded if recorded[p][0] != row.part_length(p)]
        if total != row.file_size or bad_size:
            await self.fail_upload(row, errors.SizeMismatch.code)
            raise errors.SizeMismatch(
                f"parts add up to {total} bytes, fsize is {row.file_size}", vid=row.video_id
            )
        # 2. every part's hash, against what storage holds
        parts = [PartInfo(p, recorded[p][0], recorded[p][1]) for p in range(1, row.part_count + 1)]
        if not await self.store.head(row.storage_key):
            stored = {
                p.number: p for p in await self.store.list_parts(row.storage_key, row.multipart_id)
            }
            wrong = [p.number for p in parts if stored.get(p.number) != p]
            if wrong:
                # Storage lost or replaced these parts: ask the client to send them again.
                async with transaction(self.engine) as conn:
                    await repo.forget_parts(conn, row.id, wrong)
                    await repo.move_upload(
                        conn, row.id, U.COMPLETING, U.UPLOADING, completing_at=None
                    )
                log.warning("parts_invalidated", upload_id=row.upload_id, parts=wrong)
                return {
                    "upload_id": row.upload_id,
                    "received": row.part_count - len(wrong),
                    "part_count": row.part_count,
                    "missing": wrong,
                }
            await self.store.complete_multipart(row.storage_key, row.multipart_id, parts)
        # 3. the whole file's size and MD5 (continuing the saved state: no re-read in order)
        head = await self.store.head(row.storage_key)
        if head is None or head.size != row.file_size:
            await self.fail_upload(row, errors.SizeMismatch.code, delete_object=True)
            raise errors.SizeMismatch("the stored object has the wrong size", vid=row.video_id)
        md5 = await self._whole_md5(row)
        if row.client_md5 is not None and md5 != row.client_md5:
            await self.fail_upload(row, errors.HashMismatch.code, delete_object=True)
            raise errors.HashMismatch(
                f"the uploaded file's MD5 is {md5}, init declared {row.client_md5}",
                vid=row.video_id,
                md5=md5,
            )
        return await self.publish(row, md5)

    async def publish(self, row: UploadRow, md5: str) -> dict:
        """The verified bytes become the video (uploaded, indexed by md5, maybe queued)."""
        if await replace.completed(self.engine, row, md5, self.enqueue_transcode):
            # A new source for a kept vid: queued for its transcode, the old renditions play on.
            if self.after_enqueue is not None:
                await self.after_enqueue()
            return {**self.uploaded_answer(row), "md5": md5}
        async with transaction(self.engine) as conn:
            # The video first, then its upload: the lock order of a delete.
            await videos.move_video(
                conn, row.video_id, V.UPLOADING, V.UPLOADED, hash=md5, file_size=row.file_size
            )
            await repo.move_upload(
                conn, row.id, U.COMPLETING, U.UPLOADED, client_md5=md5, md5_state=None
            )
            outputs: list[dict] = []
            if row.auto_transcode and self.enqueue_transcode is not None:
                outputs = await self.enqueue_transcode(
                    conn, row.app_id, row.video_id, row.task_priority
                )
        if row.auto_transcode and self.after_enqueue is not None:
            await self.after_enqueue()
        log.info("upload_completed", upload_id=row.upload_id, vid=row.video_id, md5=md5)
        metrics().uploads_completed.inc()
        answer = {
            "upload_id": row.upload_id,
            "vid": row.video_id,
            "status": "uploaded",
            "md5": md5,
            "size": row.file_size,
        }
        return with_outputs(answer, outputs)

    async def _whole_md5(self, row: UploadRow) -> str:
        """Finish the saved MD5 state, reading only the parts it has not seen."""
        if md5state.available():
            ctx = ResumableMD5(row.md5_state if row.md5_parts else None)
            start = row.md5_parts * row.part_size if row.md5_parts else 0
        else:
            ctx, start = hashlib.md5(), 0  # type: ignore[assignment]
        if start < row.file_size:
            log.info("upload_verifying_read", upload_id=row.upload_id, from_byte=start)
            loop = asyncio.get_running_loop()
            async for chunk in self.store.read(row.storage_key, start, None, chunk_size=4 << 20):
                await loop.run_in_executor(self.pool, ctx.update, chunk)
        return ctx.hexdigest()

    async def fail_upload(self, row: UploadRow, reason: str, delete_object: bool = False) -> None:
        """Mark the upload and its video failed; the bytes are dropped, never indexed."""
        async with transaction(self.engine) as conn:
            if not await replace.ended(conn, row):  # a replacement's video is left as it was
                await videos.move_video(
                    conn, row.video_id, V.UPLOADING, V.UPLOAD_FAILED, error=reason, hash=None
                )
            await repo.move_upload(
                conn, row.id, U.COMPLETING, U.FAILED, error=reason, md5_state=None
            )
        if delete_object:
            await self.store.delete(row.storage_key)
        else:
            await self.store.abort_multipart(row.storage_key, row.multipart_id)
        log.warning("upload_failed", upload_id=row.upload_id, vid=row.video_id, reason=reason)
        metrics().uploads_failed.labels(reason).inc()
