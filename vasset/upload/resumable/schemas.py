"""Query parameters and JSON answers of the ticket call and the protocol routes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from vasset.http.params import Priority
from vasset.http.schemas import Answer, Md5Hex
from vasset.playback.policy import PolicyParam
from vasset.templates.schemas import TemplateNames
from vasset.upload.resumable.repository import ResumableRow
from vasset.videos.schemas import Ttl

_encoder = msgspec.json.Encoder()


class TicketParams(msgspec.Struct):
    """Query of POST /video/upload/ticket."""

    max_size: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=2**63 - 1,
                description="largest upload in bytes (default and cap: max_file_size)",
            ),
        ]
        | None
    ) = None
    auto: Annotated[
        int, msgspec.Meta(ge=0, le=1, description="1: transcode each upload when complete")
    ] = 0
    priority: Annotated[Priority, msgspec.Meta(description="task_priority of the uploads")] = 0
    expires: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=2**31,
                description="seconds it lives (default 3600, capped by VASSET_TICKET_MAX_TTL)",
            ),
        ]
        | None
    ) = None
    uses: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=1000,
            description="how many uploads it may create (partial uploads do not count)",
        ),
    ] = 1
    ttl: Ttl | None = None
    template: Annotated[
        TemplateNames | None,
        msgspec.Meta(
            description="with auto=1: the transcode template of its uploads; a comma list (up"
            " to 8) makes several outputs, each further one a new video sharing the bytes"
        ),
    ] = None
    playback_policy: PolicyParam | None = None


class SignedCreation(msgspec.Struct):
    """Extra query of a signed POST /files/ (an upload created by the app itself)."""

    auto: Annotated[int, msgspec.Meta(ge=0, le=1)] = 0
    priority: Priority = 0


class Ticket(Answer):
    """Answer of POST /video/upload/ticket: shown once; send as Authorization: Bearer."""

    ticket: str
    expires_at: int
    endpoint: str


class UploadState(Answer):
    """Answer of GET /files/{id}: where a protocol upload stands."""

    upload_id: str
    vid: int | None
    status: str
    offset: int
    length: int | None
    md5: Md5Hex | None
    size: int | None

    @classmethod
    def of(cls, row: ResumableRow) -> bytes:
        """The JSON body for a row."""
        status = row.upload.status.value
        uploaded = status == "uploaded"
        state = cls(
            upload_id=row.upload_id,
            vid=row.upload.video_id or None,
            status="upload_failed" if status in ("failed", "aborted") else status,
            offset=row.offset,
            length=row.length,
            md5=row.upload.client_md5 if uploaded else None,
            size=row.length if uploaded else None,
        )
        return _encoder.encode(state)
