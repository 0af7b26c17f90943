"""The concatenation extension: a final upload is its partial uploads' bytes, in order.

The partials are joined through the same appender as any body (so the final upload's parts,
tail and MD5 state are recorded the same way, and a crash mid-way resumes from the recorded
offset); this reads each partial once, which is also what the whole-file MD5 needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog

from vasset import errors
from vasset.db import transaction
from vasset.lifecycle import LostRace
from vasset.storage.base import BlobStore, PartInfo
from vasset.upload import repository as uploads_repo
from vasset.upload.resumable.appender import Appender
from vasset.upload.resumable.repository import ResumableRow
from vasset.upload.state import UploadStatus
from vasset.upload.stream import BodyReader

if TYPE_CHECKING:
    from vasset.upload.resumable.service import Resumable

log = structlog.get_logger(__name__)
U = UploadStatus
#: A partial claimed for a final stays claimed through the whole concatenation, which is not
#: renewed (claims.kept_fresh covers single completions): a long fixed lease keeps a second
#: final from taking a partial that a slow concatenation is still reading.
CONCAT_CLAIM_LEASE = 600


async def assemble(
    service: Resumable, final: ResumableRow, partials: list[ResumableRow], resumed: bool = False
) -> ResumableRow:
    """Join the partials into the final upload and finish it; returns the final's row."""
    if not resumed:
        for partial in partials:
            await _seal_partial(service, partial)
    async with service.lease(final) as lease:
        final = await service.load(final.upload_id)
        if final.offset < (final.length or 0):
            appender = Appender(
                service.engine, service.store, service.settings.tus_part_size, lease
            )
            reader = BodyReader(_chain(service.store, partials, final.offset))
            await appender.append(final, reader, (final.length or 0) - final.offset)
            final = await service.load(final.upload_id)
            if final.complete and final.tail_size:
                await appender.seal(final)
                final = await service.load(final.upload_id)
        if not final.complete:
            raise errors.StorageError("the partial uploads ended before the final length")
        await service.finish(final)
    for partial in partials:
        await _retire_partial(service, partial)
    log.info("resumable_concatenated", upload_id=final.upload_id, partials=len(partials))
    return await service.load(final.upload_id)


async def _seal_partial(service: Resumable, partial: ResumableRow) -> None:
    """Join a partial's own parts into its object (idempotent), claiming it for this final."""
    upload = partial.upload
    try:
        async with transaction(service.engine) as conn:
            await uploads_repo.take_completion(conn, upload.id, CONCAT_CLAIM_LEASE)
    except LostRace:
        raise errors.InvalidHeader(
            f"partial upload {partial.upload_id} is already being concatenated",
            header="Upload-Concat",
        ) from None
    if partial.tail_size:
        async with service.lease(partial) as lease:
            row = await service.load(partial.upload_id)
            await Appender(
                service.engine, service.store, service.settings.tus_part_size, lease
            ).seal(row)
    async with transaction(service.engine) as conn:
        recorded = await uploads_repo.list_parts(conn, upload.id)
    parts = [PartInfo(n, size, etag) for n, (size, etag) in sorted(recorded.items())]
    if not await service.store.head(upload.storage_key):
        await service.store.complete_multipart(upload.storage_key, upload.multipart_id, parts)


async def _retire_partial(service: Resumable, partial: ResumableRow) -> None:
    """A partial whose bytes are in a final: done, and its own copy removed."""
    try:
        async with transaction(service.engine) as conn:
            await uploads_repo.move_upload(conn, partial.upload.id, U.COMPLETING, U.UPLOADED)
    except LostRace:
        pass
    try:
        await service.store.delete(partial.upload.storage_key)
    except errors.VassetError as exc:
        log.warning("partial_left_behind", upload_id=partial.upload_id, error=exc.code)


async def _chain(
    store: BlobStore, partials: list[ResumableRow], start: int
) -> AsyncIterator[bytes]:
    """The partials' bytes back to back, from byte ``start`` of the whole."""
    position = 0
    for partial in partials:
        size = partial.length or 0
        if start < position + size:
            first = max(0, start - position)
            async for chunk in store.read(partial.upload.storage_key, first, None, 4 << 20):
                yield chunk
        position += size
