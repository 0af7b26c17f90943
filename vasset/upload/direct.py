"""Direct uploads on OSS: the client's bytes go straight to OSS, never through the API.

Two flows (docs/OSS.md):
- multipart: ``init`` with direct=1 gives presigned UploadPart URLs; ``complete`` checks the
  parts through ListParts, records them, and hands over to UploadService.complete, which
  completes the multipart upload and verifies the whole-file MD5 exactly as for proxied parts.
- PostObject: ``credentials`` gives a browser a policy for one fresh key prefix; ``register``
  copies the posted object to a key the client cannot write, hashes the copy and records the
  video, so the MD5 that enters the instant-upload index is the stored bytes' MD5.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlparse

import oss2
import structlog
from sqlalchemy.exc import IntegrityError

from vasset import errors
from vasset.auth.verify import App
from vasset.db import transaction
from vasset.lifecycle import LostRace
from vasset.settings import Settings
from vasset.storage import keys
from vasset.storage.oss import OssBlobStore
from vasset.upload import repository as repo
from vasset.upload.names import decode_file_name
from vasset.upload.repository import UploadRow
from vasset.upload.service import MD5_RE, UploadService, check_md5
from vasset.upload.state import ENDED_BADLY, UploadStatus
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

log = structlog.get_logger(__name__)

U = UploadStatus
V = VideoStatus

#: Presigned part URLs handed out per answer (init and direct/urls).
URL_BATCH = 1000
#: The last path component a PostObject key may use under its credentials' dir.
_POSTED_NAME = re.compile(r"^(?!\.\.?\Z)[A-Za-z0-9._-]{1,128}\Z")
_POSTED_NONCE = re.compile(r"^[a-z0-9_]{1,32}\Z")


class DirectUploads:
    """Direct-to-OSS uploads for one process; the upload domain stays in UploadService."""

    def __init__(self, uploads: UploadService, store: OssBlobStore, settings: Settings) -> None:
        self.uploads = uploads
        self.store = store
        self.settings = settings
        self.completed = 0
        self.registered = 0
        self.verify_bytes_read = 0

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
    ) -> dict:
        """Start an upload recorded with direct=1 and answer presigned part URLs."""
        answer = await self.uploads.init(app, fn, fsize, psize, md5, auto, priority, direct=True)
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

    @staticmethod
    def _check_open(row: UploadRow) -> None:
        if row.status == U.UPLOADED:
            raise errors.UploadCompleted(vid=row.video_id)
        if row.status in ENDED_BADLY:
            raise errors.UploadAborted(vid=row.video_id)

    async def part_urls(self, app: App, upload_id: str, pseqs: list[int] | None) -> dict:
        """Fresh URLs for the given parts, or for every part OSS does not hold yet."""
        row = await self._direct_row(app, upload_id)
        self._check_open(row)
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
            return {
                "upload_id": row.upload_id,
                "vid": row.video_id,
                "status": "uploaded",
                "md5": row.client_md5,
                "size": row.file_size,
            }
        self._check_open(row)
        if row.status == U.UPLOADING:
            await self._record_stored_parts(row)
        answer = await self.uploads.complete(row)
        if answer.get("status") == "uploaded":
            self.completed += 1
            self.verify_bytes_read += row.file_size  # no MD5 state: one verifying read
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

    # PostObject
    def credentials(self, app: App) -> dict:
        """A PostObject policy for one fresh prefix of this app, video types, size-capped."""
        now = int(time.time())
        expire = now + self.settings.oss_direct_url_ttl
        directory = self.store.prefix + keys.direct_prefix(app.id) + keys.new_nonce() + "/"
        max_size = min(self.settings.oss_post_max_size, self.settings.max_file_size)
        policy = {
            "expiration": datetime.fromtimestamp(expire, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                {"bucket": self.store.bucket_name},
                ["starts-with", "$key", directory],
                ["content-length-range", 1, max_size],
                ["starts-with", "$Content-Type", "video/"],
            ],
        }
        policy_b64 = base64.b64encode(json.dumps(policy).encode()).decode()
        secret = self.settings.oss_access_key_secret.encode()
        signature = base64.b64encode(
            hmac.new(secret, policy_b64.encode(), hashlib.sha1).digest()
        ).decode()
        answer = {
            "accessKeyId": self.settings.oss_access_key_id,
            "policy": policy_b64,
            "signature": signature,
            "dir": directory,
            "host": self._post_host(),
            "expire": expire,
            "key": directory + "source",
            "max_size": max_size,
        }
        if self.settings.oss_security_token:
            answer["securityToken"] = self.settings.oss_security_token
        return answer

    def _post_host(self) -> str:
        """Where the browser POSTs: path-style for IP endpoints, else the bucket's host."""
        parsed = urlparse(self.store.endpoint)
        if oss2.utils.is_ip_or_localhost(parsed.netloc):
            return f"{parsed.scheme}://{parsed.netloc}/{self.store.bucket_name}"
        return f"{parsed.scheme}://{self.store.bucket_name}.{parsed.netloc}"

    def _own_posted_key(self, app: App, key: str) -> str:
        """The posted key relative to the store, if it lies under this app's direct prefix."""
        if not key.startswith(self.store.prefix):
            raise errors.ObjectNotFound()
        rel = key[len(self.store.prefix) :]
        prefix = keys.direct_prefix(app.id)
        if not rel.startswith(prefix):
            raise errors.ObjectNotFound()  # another app's key answers as if it did not exist
        parts = rel[len(prefix) :].split("/")
        if len(parts) != 2 or not _POSTED_NONCE.match(parts[0]) or not _POSTED_NAME.match(parts[1]):
            raise errors.InvalidParameter(
                "key must be the credentials' dir followed by a name of letters, digits, '.', "
                "'_' or '-'",
                parameter="key",
            )
        return rel

    async def register(
        self,
        app: App,
        key: str,
        fn: str | None,
        md5: str | None,
        auto: bool,
        priority: int,
    ) -> dict:
        """Turn a PostObject upload into a verified, uploaded video (idempotent per key)."""
        posted = self._own_posted_key(app, key)
        md5 = check_md5(md5)
        upload_id = hashlib.sha256(f"{app.id}:{posted}".encode()).hexdigest()[:32]
        async with transaction(self.uploads.engine) as conn:
            row = await repo.get_upload(conn, upload_id)
            live = row is not None and await videos.get_video(conn, row.video_id, app.id)
        if row is not None and row.status == U.UPLOADED:
            if not live:
                raise errors.ObjectNotFound()  # registered, then deleted with its bytes
            return self._registered(row, row.client_md5)
        if row is not None and row.status in (*ENDED_BADLY, U.EXPIRED):
            raise errors.UploadAborted(vid=row.video_id)
        info = await self.store.head(posted)
        if info is None:
            raise errors.ObjectNotFound()
        self._check_posted(info.size, info.content_type)
        if row is None:
            row = await self._insert_registration(
                app, upload_id, posted, info.size, fn, md5, auto, priority
            )
            if row.status == U.UPLOADED:
                return self._registered(row, row.client_md5)
        try:
            async with transaction(self.uploads.engine) as conn:
                await repo.take_completion(conn, row.id, self.settings.completion_lease)
        except LostRace:
            # A concurrent register of the same key holds it (or just finished).
            raise errors.UploadInProgress("this key is being registered; retry shortly") from None
        try:
            return await self._register_taken(row, posted, md5)
        except errors.VerificationFailed:
            raise
        except LostRace:
            # The video was deleted while its posted object was being registered.
            raise errors.UploadAborted(vid=row.video_id) from None
        except BaseException:
            await self.uploads.give_back(row)
            raise

    def _check_posted(self, size: int, content_type: str) -> None:
        limit = min(self.settings.oss_post_max_size, self.settings.max_file_size)
        if size > limit:
            raise errors.EntityTooLarge(
                f"the object has {size} bytes; PostObject uploads are limited to {limit}",
                max_size=limit,
            )
        if size <= 0:
            raise errors.InvalidParameter("the object is empty", parameter="key")
        if not content_type.startswith("video/"):
            raise errors.InvalidParameter(
                f"the object's Content-Type is {content_type!r}, not video/*", parameter="key"
            )

    async def _insert_registration(
        self,
        app: App,
        upload_id: str,
        posted: str,
        size: int,
        fn: str | None,
        md5: str | None,
        auto: bool,
        priority: int,
    ) -> UploadRow:
        """Insert the video and its upload row; a concurrent register of the key wins instead."""
        name = decode_file_name(fn) if fn else posted.rsplit("/", 1)[-1]
        now = int(time.time())
        try:
            async with transaction(self.uploads.engine) as conn:
                vid = await self.uploads.new_video(conn, app.id, name, size, priority)
                source = keys.source_key(app.id, vid, keys.new_nonce())
                await videos.update_video(conn, vid, storage_uri=source)
                await repo.insert_upload(
                    conn,
                    upload_id=upload_id,
                    token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                    app_id=app.id,
                    video_id=vid,
                    file_size=size,
                    part_size=size,
                    part_count=1,
                    client_md5=md5,
                    storage_key=source,
                    # the upload handle of a PostObject is the posted key (nothing to abort)
                    multipart_id=posted,
                    direct=1,
                    auto_transcode=int(auto),
                    task_priority=priority,
                    expires_at=now + self.settings.upload_ttl,
                )
        except IntegrityError:
            pass  # the same key was registered concurrently: continue with that row
        async with transaction(self.uploads.engine) as conn:
            row = await repo.get_upload(conn, upload_id)
        assert row is not None
        return row

    async def _register_taken(self, row: UploadRow, posted: str, md5: str | None) -> dict:
        # The client may POST to its key again until the policy expires: hash a copy it
        # cannot write, so the MD5 we record is the MD5 of the bytes the video points at.
        await self.store.copy(posted, row.storage_key)
        info = await self.store.head(row.storage_key)
        if info is None:
            raise errors.StorageError("the copied object is missing")
        self._check_posted(info.size, info.content_type)
        digest = hashlib.md5()
        loop = asyncio.get_running_loop()
        async for chunk in self.store.read(row.storage_key, chunk_size=4 << 20):
            await loop.run_in_executor(self.uploads.pool, digest.update, chunk)
            self.verify_bytes_read += len(chunk)
        computed = digest.hexdigest()
        if md5 is not None and computed != md5:
            async with transaction(self.uploads.engine) as conn:
                await videos.move_video(
                    conn, row.video_id, V.UPLOADING, V.UPLOAD_FAILED, error="HashMismatch"
                )
                await repo.move_upload(conn, row.id, U.COMPLETING, U.FAILED, error="HashMismatch")
            await self.store.delete(row.storage_key)
            await self.store.delete(posted)
            raise errors.HashMismatch(
                f"the posted object's MD5 is {computed}, hash says {md5}",
                vid=row.video_id,
                md5=computed,
            )
        async with transaction(self.uploads.engine) as conn:
            # The video first, then its upload: the lock order of a delete.
            await videos.move_video(
                conn, row.video_id, V.UPLOADING, V.UPLOADED, hash=computed, file_size=info.size
            )
            await repo.move_upload(
                conn, row.id, U.COMPLETING, U.UPLOADED, client_md5=computed, file_size=info.size
            )
            if row.auto_transcode and self.uploads.enqueue_transcode is not None:
                await self.uploads.enqueue_transcode(
                    conn, row.app_id, row.video_id, row.task_priority
                )
        if row.auto_transcode and self.uploads.after_enqueue is not None:
            await self.uploads.after_enqueue()
        try:
            await self.store.delete(posted)
        except errors.VassetError:
            log.warning("posted_object_left", key=posted)
        self.registered += 1
        log.info("direct_registered", vid=row.video_id, size=info.size, md5=computed)
        row.file_size = info.size
        return self._registered(row, computed)

    @staticmethod
    def _registered(row: UploadRow, md5: str | None) -> dict:
        return {"vid": row.video_id, "status": "uploaded", "md5": md5, "size": row.file_size}

    def metrics(self) -> dict[str, int]:
        """Counters for GET /internal/metrics."""
        return {
            "vasset_direct_uploads_completed_total": self.completed,
            "vasset_direct_registered_total": self.registered,
            "vasset_direct_verify_bytes_read_total": self.verify_bytes_read,
        }
