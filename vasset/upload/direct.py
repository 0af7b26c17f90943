"""Direct uploads on OSS: the client's bytes go straight to OSS, never through the API.

Two flows (docs/OSS.md):
- multipart: ``init`` with direct=1 gives presigned UploadPart URLs; ``complete`` checks the
  parts through ListParts, records them, and hands over to UploadService.complete, which
  completes the multipart upload and verifies the whole-file MD5 exactly as for proxied parts.
- PostObject: ``credentials`` and ``register``, in upload/posted.py.
"""

from __future__ import annotations

import time

import structlog

from vasset import errors
from vasset.auth.verify import App
from vasset.db import transaction
from vasset.metrics.registry import metrics
from vasset.settings import Settings
from vasset.storage.oss import OssBlobStore
from vasset.upload import repository as repo
from vasset.upload.posted import PostedUploads
from vasset.upload.repository import UploadRow
from vasset.upload.service import MD5_RE, UploadService
from vasset.upload.state import UploadStatus

log = structlog.get_logger(__name__)

U = UploadStatus

#: Presigned part URLs handed out per answer (init and direct/urls).
URL_BATCH = 1000


class DirectUploads(PostedUploads):
    """Direct-to-OSS uploads for one process; the upload domain stays in UploadService."""

    def __init__(self, uploads: UploadService, store: OssBlobStore, settings: Settings) -> None:
        self.uploads = uploads
        self.store = store
        self.settings = settings

    # multipart
    async def init(
        self,
        app: App,
        fn: str,
        fsize: int,
        psize: int,
        md5: str | None,
        auto: bool,
        priority: int,
        ttl: int | None = None,
        playback_policy: str | None = None,
        options: str | None = None,
    ) -> dict:
        """Start an upload recorded with direct=1 and answer presigned part URLs."""
        answer = await self.uploads.init(
            app,
            fn,
            fsize,
            psize,
            md5,
            auto,
            priority,
            direct=True,
            ttl=ttl,
            playback_policy=playback_policy,
            options=options,
        )
        if answer.get("instant"):
            return answer  # verified bytes exist already: nothing to upload
        row = await self.uploads.load(answer["upload_id"], app, None)
        pseqs = list(range(1, min(row.part_count, URL_BATCH) + 1))
        answer["direct"] = True
        answer["part_urls"] = self._part_urls(row, pseqs)
        log.info("direct_upload_started", upload_id=row.upload_id, vid=row.video_id)
        return answer

    def _part_urls(self, row: UploadRow, pseqs: list[int]) -> list[dict]:
        expires_at = min(int(time.time()) + self.settings.oss_direct_url_ttl, row.expires_at)
        return [
            {
                "pseq": n,
                "url": self.store.presign_part_put(
                    row.storage_key, row.multipart_id, n, expires_at
                ),
                "size": row.part_length(n),
                "expires_at": expires_at,
            }
            for n in pseqs
        ]

    async def _direct_row(self, app: App, upload_id: str) -> UploadRow:
        row = await self.uploads.load(upload_id, app, None)
        if not row.direct:
            raise errors.InvalidParameter(
                "this upload is not a direct upload; its last part completes it", parameter="upid"
            )
        return row

    async def part_urls(self, app: App, upload_id: str, pseqs: list[int] | None) -> dict:
        """Fresh URLs for the given parts, or for every part OSS does not hold yet."""
        row = await self._direct_row(app, upload_id)
        self.uploads.check_writable(row)
        answer: dict = {"upload_id": row.upload_id, "part_count": row.part_count}
        if pseqs is None:
            stored = await self.store.list_parts(row.storage_key, row.multipart_id)
            good = {p.number for p in stored if p.size == row.part_length(p.number)}
            missing = [n for n in range(1, row.part_count + 1) if n not in good]
            answer["missing"] = missing
            pseqs = missing[:URL_BATCH]
        else:
            if len(pseqs) > URL_BATCH:
                raise errors.InvalidParameter(
                    f"at most {URL_BATCH} pseqs per call", parameter="pseqs"
                )
            bad = [n for n in pseqs if not 1 <= n <= row.part_count]
            if bad:
                raise errors.InvalidParameter(
                    f"pseqs must lie between 1 and {row.part_count}", parameter="pseqs"
                )
            pseqs = sorted(set(pseqs))
        answer["part_urls"] = self._part_urls(row, pseqs)
        return answer

    async def complete(self, app: App, upload_id: str) -> dict:
        """Check OSS's parts, record them, then complete and verify like a proxied upload."""
        row = await self._direct_row(app, upload_id)
        if row.status == U.UPLOADED:
            return self.uploads.uploaded_answer(row)
        self.uploads.check_writable(row)
        if row.status == U.UPLOADING:
            await self._record_stored_parts(row)
        answer = await self.uploads.complete(row)
        if answer.get("status") == "uploaded":
            metrics().direct_uploads_completed.inc()
            # No MD5 state: one verifying read.
            metrics().direct_verify_bytes_read.inc(row.file_size)
        return answer

    async def _record_stored_parts(self, row: UploadRow) -> None:
        """Copy ListParts into upload_part, after checking count, sizes and ETags."""
        stored = {
            p.number: p
            for p in await self.store.list_parts(row.storage_key, row.multipart_id)
            if p.number <= row.part_count
        }
        if not stored and await self.store.head(row.storage_key) is not None:
            return  # an earlier complete got as far as CompleteMultipartUpload: parts recorded
        missing = [n for n in range(1, row.part_count + 1) if n not in stored]
        if missing:
            raise errors.InvalidState(
                f"{len(missing)} parts are missing in OSS: {missing[:20]}",
                missing=missing[:URL_BATCH],
            )
        wrong = [n for n, p in stored.items() if p.size != row.part_length(n)]
        if wrong:
            raise errors.InvalidPartSize(
                f"parts {wrong[:20]} have the wrong size; upload them again (part_size "
                f"{row.part_size}, the last part holds the remainder)",
                parts=wrong[:URL_BATCH],
            )
        odd = [n for n, p in stored.items() if not MD5_RE.match(p.etag)]
        if odd:
            raise errors.StorageError(f"OSS answered ETags that are not MD5s for parts {odd[:20]}")
        async with transaction(self.uploads.engine) as conn:
            recorded = await repo.list_parts(conn, row.id)
            stale = [
                n
                for n, (size, md5) in recorded.items()
                if n in stored and (size, md5) != (stored[n].size, stored[n].etag)
            ]
            if stale:
                await repo.forget_parts(conn, row.id, stale)
            for n, part in sorted(stored.items()):
                if n not in recorded or n in stale:
                    await repo.record_part(conn, row.id, n, part.size, part.etag)
