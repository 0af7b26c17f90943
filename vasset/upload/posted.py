"""PostObject uploads (docs/OSS.md): a browser posts to OSS, ``register`` makes it a video.

A mixin of DirectUploads (split out for size). ``credentials`` gives a browser a policy for one
fresh key prefix; ``register`` copies the posted object to a key the client cannot write,
hashes the copy and records the video, so the MD5 that enters the instant-upload index is the
stored bytes' MD5.
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
from vasset.metrics.registry import metrics
from vasset.settings import Settings
from vasset.storage import keys
from vasset.storage.oss import OssBlobStore
from vasset.templates.service import record_for_video
from vasset.upload import claims
from vasset.upload import repository as repo
from vasset.upload.answers import with_outputs
from vasset.upload.names import decode_file_name
from vasset.upload.repository import UploadRow
from vasset.upload.service import UploadService, check_md5
from vasset.upload.state import ENDED_BADLY, UploadStatus
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

log = structlog.get_logger(__name__)

U = UploadStatus
V = VideoStatus

#: The last path component a PostObject key may use under its credentials' dir.
_POSTED_NAME = re.compile(r"^(?!\.\.?\Z)[A-Za-z0-9._-]{1,128}\Z")
_POSTED_NONCE = re.compile(r"^[a-z0-9_]{1,32}\Z")


class PostedUploads:
    """credentials and register; DirectUploads provides the attributes."""

    uploads: UploadService
    store: OssBlobStore
    settings: Settings

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
        options: str | None = None,
    ) -> dict:
        """Turn a PostObject upload into a verified, uploaded video (idempotent per key).

        options: the stored template options of its automatic transcode (template=).
        """
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
                app, upload_id, posted, info.size, fn, md5, auto, priority, options
            )
            if row.status == U.UPLOADED:
                return self._registered(row, row.client_md5)
        lease = self.settings.completion_lease
        try:
            claimed_at = await claims.take(self.uploads.engine, row.id, lease)
        except LostRace:
            # A concurrent register of the same key holds it (or just finished).
            raise errors.UploadInProgress("this key is being registered; retry shortly") from None
        try:
            async with claims.kept_fresh(self.uploads.engine, row.id, claimed_at, lease):
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
        options: str | None,
    ) -> UploadRow:
        """Insert the video and its upload row; a concurrent register of the key wins instead."""
        name = decode_file_name(fn) if fn else posted.rsplit("/", 1)[-1]
        now = int(time.time())
        try:
            async with transaction(self.uploads.engine) as conn:
                vid = await self.uploads.new_video(conn, app.id, name, size, priority)
                source = keys.source_key(app.id, vid, keys.new_nonce())
                await videos.update_video(conn, vid, storage_uri=source)
                await record_for_video(conn, vid, options)
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
            metrics().direct_verify_bytes_read.inc(len(chunk))
        computed = digest.hexdigest()
        if md5 is not None and computed != md5:
            async with transaction(self.uploads.engine) as conn:
                failure = errors.HashMismatch.code
                await videos.move_video(
                    conn, row.video_id, V.UPLOADING, V.UPLOAD_FAILED, error=failure
                )
                await repo.move_upload(conn, row.id, U.COMPLETING, U.FAILED, error=failure)
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
            outputs: list[dict] = []
            if row.auto_transcode and self.uploads.enqueue_transcode is not None:
                outputs = await self.uploads.enqueue_transcode(
                    conn, row.app_id, row.video_id, row.task_priority
                )
        if row.auto_transcode and self.uploads.after_enqueue is not None:
            await self.uploads.after_enqueue()
        try:
            await self.store.delete(posted)
        except errors.VassetError:
            log.warning("posted_object_left", key=posted)
        metrics().direct_registered.inc()
        log.info("direct_registered", vid=row.video_id, size=info.size, md5=computed)
        row.file_size = info.size
        answer = self._registered(row, computed)
        return with_outputs(answer, outputs)

    @staticmethod
    def _registered(row: UploadRow, md5: str | None) -> dict:
        return {"vid": row.video_id, "status": "uploaded", "md5": md5, "size": row.file_size}
