"""How a protocol upload ends well: the parts joined, the size checked, the video published.

A mixin of Resumable (split out for size). Completion runs in the request that stores the
last byte, or, after a crash, in the HEAD that finds every byte in but no video yet.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, cast

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset import errors
from vasset.db import transaction
from vasset.lifecycle import LostRace
from vasset.settings import Settings
from vasset.storage import keys
from vasset.storage.base import BlobStore, PartInfo
from vasset.upload import claims
from vasset.upload import repository as uploads_repo
from vasset.upload.md5state import ResumableMD5
from vasset.upload.resumable.appender import Appender
from vasset.upload.resumable.concat import assemble
from vasset.upload.resumable.lease import Lease
from vasset.upload.resumable.repository import ResumableRow
from vasset.upload.state import UploadStatus

if TYPE_CHECKING:
    from vasset.upload.resumable.service import Resumable
    from vasset.upload.service import UploadService

log = structlog.get_logger(__name__)
U = UploadStatus


class Finishing:
    """finish, settle and resume_final; Resumable provides the attributes."""

    uploads: UploadService
    settings: Settings
    engine: AsyncEngine
    store: BlobStore

    def lease(self, row: ResumableRow) -> AbstractAsyncContextManager[Lease]:
        raise NotImplementedError

    async def load(self, upload_id: str) -> ResumableRow:
        raise NotImplementedError

    async def finish(self, row: ResumableRow) -> dict:
        """Every byte is in: join the parts, check the size, publish with the MD5 we computed."""
        upload = row.upload
        lease = self.settings.completion_lease
        try:
            claimed_at = await claims.take(self.engine, upload.id, lease)
        except LostRace:
            return await self.uploads.await_completion(upload)
        try:
            async with claims.kept_fresh(self.engine, upload.id, claimed_at, lease):
                return await self._finish_taken(row)
        except errors.VerificationFailed:
            raise
        except LostRace:
            raise errors.UploadGone("the upload was terminated while it completed") from None
        except BaseException:
            await self.uploads.give_back(upload)
            raise

    async def _finish_taken(self, row: ResumableRow) -> dict:
        """Join, check and publish an upload whose completion this request holds."""
        upload = row.upload
        async with transaction(self.engine) as conn:
            recorded = await uploads_repo.list_parts(conn, upload.id)
        parts = [PartInfo(n, size, etag) for n, (size, etag) in sorted(recorded.items())]
        total = sum(p.size for p in parts)
        if total != row.length:
            await self.uploads.fail_upload(upload, errors.SizeMismatch.code)
            raise errors.SizeMismatch(
                f"the parts hold {total} bytes, Upload-Length is {row.length}",
                vid=upload.video_id,
            )
        if not await self.store.head(upload.storage_key):
            await self.store.complete_multipart(upload.storage_key, upload.multipart_id, parts)
        head = await self.store.head(upload.storage_key)
        if head is None or head.size != row.length:
            await self.uploads.fail_upload(upload, errors.SizeMismatch.code, delete_object=True)
            raise errors.SizeMismatch("the stored object has the wrong size", vid=upload.video_id)
        md5 = ResumableMD5(row.md5_state).hexdigest()
        final = msgspec.structs.replace(upload, file_size=row.length)
        answer = await self.uploads.publish(final, md5)
        await self._drop_tails(upload.storage_key)
        return answer

    async def settle(self, row: ResumableRow) -> ResumableRow:
        """Finish an upload whose bytes are all in but whose completion never ran (a crash).

        A client that reads Upload-Offset == Upload-Length on HEAD sends nothing more, so HEAD
        must finish it. As it stands when another request holds the upload.
        """
        if row.concat == "final":
            return await self.resume_final(row)
        if row.concat == "partial" or row.upload.status != U.UPLOADING:
            return row
        try:
            async with self.lease(row) as lease:
                row = await self.load(row.upload_id)
                if row.complete and row.upload.status == U.UPLOADING:
                    if row.tail_size:
                        part_cap = self.settings.tus_part_size
                        await Appender(self.engine, self.store, part_cap, lease).seal(row)
                        row = await self.load(row.upload_id)
                    await self.finish(row)
        except errors.UploadLocked:
            return row
        return await self.load(row.upload_id)

    async def resume_final(self, row: ResumableRow) -> ResumableRow:
        """Finish joining a final upload that a crash interrupted (as it stands if locked)."""
        ids = (row.concat_parts or "").split()
        partials = [await self.load(upload_id) for upload_id in ids]
        try:
            return await assemble(cast("Resumable", self), row, partials, resumed=True)
        except errors.UploadLocked:
            return row

    async def _drop_tails(self, storage_key: str) -> None:
        """Remove tail objects an ended upload left (a stalled writer's, say)."""
        try:
            await self.store.delete_prefix(keys.tail_prefix(storage_key))
        except errors.VassetError as exc:
            log.warning("tails_left_for_janitor", key=storage_key, error=exc.code)
