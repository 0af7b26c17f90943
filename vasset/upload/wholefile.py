"""Whole-file mode (整段上传): a Content-Range body is cut into parts from the current offset.

A mixin of UploadService (split out for size); every part goes through the same
one-writer-per-part store as part mode.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

from vasset import errors
from vasset.db import transaction
from vasset.storage.base import PartInfo
from vasset.upload import repository as repo
from vasset.upload.completion import Completion
from vasset.upload.repository import UploadRow
from vasset.upload.state import UploadStatus
from vasset.upload.stream import BodyReader

#: At most 19 ASCII digits per number (BIGINT); longer numbers never reach int().
RANGE_RE = re.compile(r"^bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})\Z")


class WholeFile(Completion):
    """put_range; UploadService provides storing parts and the checks."""

    _store_once: Callable[..., Awaitable[PartInfo | None]]
    check_writable: Callable[[UploadRow], None]

    async def put_range(
        self,
        row: UploadRow,
        content_range: str | None,
        content_length: int | None,
        chunks: AsyncIterator[bytes],
    ) -> dict:
        """Cut a Content-Range body into parts from the current offset."""
        if not content_range:
            raise errors.InvalidContentRange("Content-Range is required without pseq")
        match = RANGE_RE.match(content_range.strip())
        if not match:
            raise errors.InvalidContentRange("Content-Range must be 'bytes START-END/TOTAL'")
        start, end, total = (int(g) for g in match.groups())
        if total != row.file_size or end < start or end >= total:
            raise errors.InvalidContentRange(
                f"Content-Range must lie within 0-{row.file_size - 1}/{row.file_size}"
            )
        if content_length is not None and content_length != end - start + 1:
            raise errors.InvalidContentRange("Content-Length does not match Content-Range")
        if row.status == UploadStatus.COMPLETING:
            return await self.await_completion(row)
        self.check_writable(row)
        async with transaction(self.engine) as conn:
            recorded = await repo.list_parts(conn, row.id)
        offset = self._offset(row, recorded)
        if start != offset:
            raise errors.OffsetMismatch(
                f"Content-Range starts at {start}, the upload's offset is {offset}", offset=offset
            )
        reader = BodyReader(chunks)
        pseq = start // row.part_size + 1
        position = start
        while pseq <= row.part_count and position <= end:
            size = row.part_length(pseq)
            if position + size - 1 > end:
                break  # a trailing partial part is not stored; offset moves by whole parts
            info = None
            if pseq not in recorded:
                info = await self._store_once(row, pseq, None, size, reader)
            if info is None:
                await _skip(reader, size)
            recorded[pseq] = (size, info.etag if info else "")
            position += size
            pseq += 1
        await reader.drain()
        if len(recorded) >= row.part_count:
            return await self.complete(row)
        return {"upload_id": row.upload_id, "offset": self._offset(row, recorded)}


async def _skip(reader: BodyReader, size: int) -> None:
    """Read and drop size bytes of the body (a part that is already stored)."""
    left = size
    while left > 0:
        data = await reader.read(min(left, 4 << 20))
        if not data:
            raise errors.IncompleteBody("the body ended inside an already stored part")
        left -= len(data)
