"""The protocol uploads' decisions: create, authorize, append, finish, terminate.

Protocol-neutral: tus 1.0 and the IETF draft differ only in headers, which api.py parses
into the calls here. Every upload is an ordinary vasset upload underneath (same video
lifecycle, same store, same verified publish), plus a resumable_upload row.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AbstractAsyncContextManager

import msgspec
import structlog

from vasset import errors
from vasset.auth.verify import App, new_upload_token, token_digest
from vasset.db import transaction
from vasset.lifecycle import LostRace
from vasset.metrics.registry import metrics
from vasset.settings import Settings
from vasset.storage import keys
from vasset.templates.service import record_for_video
from vasset.upload import repository as uploads_repo
from vasset.upload.md5state import ResumableMD5
from vasset.upload.names import sanitize_file_name
from vasset.upload.resumable import repository as repo
from vasset.upload.resumable.appender import Appender
from vasset.upload.resumable.concat import assemble
from vasset.upload.resumable.finishing import Finishing
from vasset.upload.resumable.lease import Lease, write_lease
from vasset.upload.resumable.repository import ResumableRow, TicketRow
from vasset.upload.resumable.tickets import bearer
from vasset.upload.service import UploadService
from vasset.upload.state import UploadStatus
from vasset.upload.stream import BodyReader
from vasset.videos import repository as videos
from vasset.videos.service import VideoService

log = structlog.get_logger(__name__)
U = UploadStatus


class Creator(msgspec.Struct, frozen=True):
    """Who creates an upload: an app through a ticket, or through a signed call."""

    app: App
    ticket: TicketRow | None
    auto: bool
    priority: int


class Creation(msgspec.Struct, frozen=True):
    """A creation request, parsed."""

    protocol: str
    length: int | None
    metadata: dict[str, str]
    raw_metadata: str | None
    concat: str | None = None
    parts: list[str] = []


class Resumable(Finishing):
    """Protocol uploads on top of the UploadService."""

    def __init__(self, uploads: UploadService, videos: VideoService, settings: Settings) -> None:
        self.uploads = uploads
        self.videos = videos
        self.settings = settings
        self.engine = uploads.engine
        self.store = uploads.store

    def max_size(self, ticket: TicketRow | None) -> int:
        """The largest upload a creator may make."""
        cap = self.settings.max_file_size
        return min(cap, ticket.max_size) if ticket is not None else cap

    # creation
    async def create(self, who: Creator, spec: Creation) -> ResumableRow:
        """A new upload (and its video, unless it is a partial one)."""
        limit = self.max_size(who.ticket)
        partials: list[ResumableRow] = []
        length = spec.length
        if spec.concat == "final":
            partials = await self._partials(who, spec.parts)
            length = sum(p.length or 0 for p in partials)
        if length is not None and length > limit:
            raise errors.EntityTooLarge(
                f"Upload-Length {length} exceeds the limit of {limit} bytes", max_file_size=limit
            )
        if length == 0:
            raise errors.InvalidHeader(
                "an upload must have at least one byte", header="Upload-Length"
            )
        name = sanitize_file_name(spec.metadata.get("filename") or spec.metadata.get("name") or "")
        extra = {k: v for k, v in spec.metadata.items() if k not in ("filename", "name")}
        now = int(time.time())
        upload_id = keys.new_nonce() + keys.new_nonce()
        _, token_hash = new_upload_token()  # part-mode calls never reach a protocol upload
        key, multipart_id = "", None
        try:
            async with transaction(self.engine) as conn:
                counts = who.ticket is not None and spec.concat != "partial"
                if counts and not await repo.use_ticket(conn, who.ticket.ticket_hash):  # type: ignore[union-attr]
                    raise errors.TicketUsedUp()
                vid = 0
                if spec.concat != "partial":
                    ttl = who.ticket.ttl if who.ticket is not None else None
                    policy = who.ticket.playback_policy if who.ticket is not None else None
                    vid = await self.uploads.new_video(
                        conn, who.app.id, name or "upload", length or 0, who.priority, ttl, policy
                    )
                    if extra:
                        await videos.set_metadata(conn, vid, json.dumps(extra))
                    if who.ticket is not None:
                        await record_for_video(conn, vid, who.ticket.transcode_options)
                key = keys.source_key(who.app.id, vid, keys.new_nonce())
                multipart_id = await self.store.create_multipart(key)
                if vid:
                    await videos.update_video(conn, vid, storage_uri=key)
                await uploads_repo.insert_upload(
                    conn,
                    upload_id=upload_id,
                    token_hash=token_hash,
                    app_id=who.app.id,
                    video_id=vid,
                    file_size=length or 0,
                    part_size=self.settings.tus_part_size,
                    part_count=0,
                    client_md5=None,
                    storage_key=key,
                    multipart_id=multipart_id,
                    direct=0,
                    auto_transcode=int(who.auto),
                    task_priority=who.priority,
                    expires_at=now + self.settings.upload_ttl,
                )
                upload = await uploads_repo.get_upload(conn, upload_id)
                assert upload is not None
                await repo.insert_resumable(
                    conn,
                    upload_pk=upload.id,
                    protocol=spec.protocol,
                    upload_length=length,
                    md5_state=ResumableMD5().save(),
                    concat=spec.concat,
                    concat_parts=" ".join(spec.parts) or None,
                    metadata=spec.raw_metadata,
                    ticket_hash=who.ticket.ticket_hash if who.ticket else None,
                )
        except BaseException:
            if multipart_id is not None:
                await asyncio.shield(self.uploads.abort_quietly(key, multipart_id))
            raise
        metrics().uploads_created.inc()
        log.info(
            "resumable_created",
            upload_id=upload_id,
            vid=vid,
            protocol=spec.protocol,
            length=length,
            concat=spec.concat,
        )
        row = await self.load(upload_id)
        if partials:
            row = await assemble(self, row, partials)
        return row

    async def _partials(self, who: Creator, ids: list[str]) -> list[ResumableRow]:
        """The partial uploads a final one names: this creator's, complete, unused."""
        found = []
        for upload_id in ids:
            row = await self.load(upload_id)
            ticket_hash = who.ticket.ticket_hash if who.ticket else None
            if row.upload.app_id != who.app.id or (
                row.ticket_hash and row.ticket_hash != ticket_hash
            ):
                raise errors.UploadNotFound(f"no partial upload {upload_id}")
            if row.concat != "partial" or not row.complete or row.upload.status != U.UPLOADING:
                raise errors.InvalidHeader(
                    f"upload {upload_id} is not a complete, unused partial upload",
                    header="Upload-Concat",
                )
            found.append(row)
        return found

    # lookups
    async def load(self, upload_id: str) -> ResumableRow:
        """The protocol upload, or UploadNotFound."""
        async with transaction(self.engine) as conn:
            row = await repo.get_resumable(conn, upload_id)
        if row is None:
            raise errors.UploadNotFound()
        return row

    async def authorize(self, upload_id: str, authorization: str | None) -> ResumableRow:
        """The upload if this request may touch it: its ticket, or its URL when made signed."""
        row = await self.load(upload_id)
        ticket = bearer(authorization)
        if row.ticket_hash is not None:
            if ticket is None:
                raise errors.InvalidTicket("this upload needs the ticket that created it")
            if token_digest(ticket) != row.ticket_hash:
                await self._known(ticket)  # an unknown ticket is 401, another live one 404
                raise errors.UploadNotFound()
        elif ticket is not None:
            await self._known(ticket)
            raise errors.UploadNotFound()  # a ticket never reaches an upload it did not create
        return row

    async def _known(self, ticket: str) -> None:
        async with transaction(self.engine) as conn:
            if await repo.get_ticket(conn, token_digest(ticket)) is None:
                raise errors.InvalidTicket("the ticket is not known")

    @staticmethod
    def check_alive(row: ResumableRow) -> None:
        """UploadGone for a terminated, expired or failed upload."""
        status = row.upload.status
        if status == U.EXPIRED or row.upload.expired():
            raise errors.UploadGone("the upload has expired")
        if status == U.ABORTED:
            raise errors.UploadGone("the upload was terminated")
        if status == U.FAILED:
            raise errors.UploadGone(f"the upload failed: {row.upload.error}")

    # writing
    def lease(self, row: ResumableRow) -> AbstractAsyncContextManager[Lease]:
        """Be the one writer of an upload for a while (UploadLocked at once otherwise)."""
        return write_lease(self.engine, row.upload.id, self.settings.tus_lock_ttl)

    async def append(
        self,
        row: ResumableRow,
        reader: BodyReader,
        offset: int,
        content_length: int | None,
        checksum: tuple[str, bytes] | None = None,
        length: int | None = None,
        completes: bool = False,
    ) -> ResumableRow:
        """Append a body at offset; completes the upload when its last byte is in."""
        self.check_alive(row)
        if row.upload.status == U.UPLOADED or (row.upload.status == U.COMPLETING and row.complete):
            if offset == row.offset and not content_length and (length in (None, row.length)):
                return row  # a retried last request: nothing to add
            raise errors.UploadCompleted(vid=row.upload.video_id, offset=row.offset)
        async with self.lease(row) as lease:
            row = await self.load(row.upload_id)
            if offset != row.offset:
                raise errors.OffsetMismatch(
                    f"Upload-Offset is {offset}, the upload's offset is {row.offset}",
                    offset=row.offset,
                    provided=offset,
                )
            if completes and content_length is not None:
                length = offset + content_length
            row = await self._declare(row, length)
            limit = await self._room(row)
            if content_length is not None and content_length > limit:
                raise errors.EntityTooLarge(
                    f"the body ({content_length} bytes) goes past the upload's end", offset=offset
                )
            appender = Appender(self.engine, self.store, self.settings.tus_part_size, lease)
            await appender.append(row, reader, limit, checksum)
            if content_length is None and not reader.ended and await reader.read(1):
                raise errors.EntityTooLarge("the body goes past the upload's end")
            row = await self.load(row.upload_id)
            if completes and row.length is None:
                row = await self._declare(row, row.offset)
            if row.complete and row.tail_size:
                await appender.seal(row)
                row = await self.load(row.upload_id)
            if row.complete and row.concat != "partial":
                await self.finish(row)
                row = await self.load(row.upload_id)
        return row

    async def _room(self, row: ResumableRow) -> int:
        """How many more bytes the upload may take: to its length, else to its creator's cap."""
        if row.length is not None:
            return row.length - row.offset
        return await self._cap(row) - row.offset

    async def _cap(self, row: ResumableRow) -> int:
        """The largest size this upload may reach (the ticket's max_size, if it had one)."""
        if row.ticket_hash is None:
            return self.settings.max_file_size
        async with transaction(self.engine) as conn:
            ticket = await repo.get_ticket(conn, row.ticket_hash)
        return self.max_size(ticket)

    async def _declare(self, row: ResumableRow, length: int | None) -> ResumableRow:
        """Fix a deferred length (once); a different length later is InconsistentLength."""
        if length is None:
            return row
        if row.length is not None:
            if length != row.length:
                raise errors.InconsistentLength(
                    f"the upload's length is {row.length}, this request says {length}"
                )
            return row
        if length < row.offset or length == 0:
            raise errors.InconsistentLength(
                f"a length of {length} is below the {row.offset} bytes already received"
            )
        cap = await self._cap(row)
        if length > cap:
            raise errors.EntityTooLarge(
                f"Upload-Length {length} exceeds the limit of {cap} bytes", max_file_size=cap
            )
        async with transaction(self.engine) as conn:
            await repo.declare_length(conn, row.upload.id, length)
        return await self.load(row.upload_id)

    # termination
    async def terminate(self, row: ResumableRow) -> None:
        """DELETE: the upload ends and its bytes go; a completed upload stays (UploadCompleted)."""
        if row.upload.status == U.UPLOADED:
            raise errors.UploadCompleted(vid=row.upload.video_id)
        self.check_alive(row)
        upload = row.upload
        if upload.video_id:
            await self.videos.delete(upload.app_id, upload.video_id)
        else:
            try:
                async with transaction(self.engine) as conn:
                    await uploads_repo.move_upload(
                        conn, upload.id, (U.UPLOADING, U.COMPLETING), U.ABORTED, error="terminated"
                    )
            except LostRace:
                raise errors.UploadGone() from None
            await self.uploads.abort_quietly(upload.storage_key, upload.multipart_id)
            await self._drop_tails(upload.storage_key)
        log.info("resumable_terminated", upload_id=row.upload_id, vid=upload.video_id)
