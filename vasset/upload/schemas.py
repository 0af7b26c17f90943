"""Query parameters and answers of /video/upload/* (the wire shapes of docs/API.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from vasset.http.params import Count, Id, Priority
from vasset.http.schemas import Answer, Md5Hex
from vasset.playback.policy import PolicyParam
from vasset.templates.schemas import Output, TemplateNames
from vasset.videos.schemas import Ttl

Upid = Annotated[str, msgspec.Meta(description="upload id (opaque), from init")]
Token = Annotated[
    str, msgspec.Meta(description="upload token from init: replaces the four signing parameters")
]


# queries


class InitParams(msgspec.Struct):
    """Query of POST /video/upload/init."""

    fn: Annotated[
        str,
        msgspec.Meta(
            description="Base64 (standard or URL-safe) of the UTF-8 file name",
            examples=["Y2xpcC5tcDQ="],
        ),
    ]
    fsize: Annotated[Count, msgspec.Meta(description="file size in bytes", examples=[10485760])]
    psize: Annotated[Count, msgspec.Meta(description="part size in bytes", examples=[4194304])]
    hash: Annotated[str | None, msgspec.Meta(description="MD5 hex of the whole file")] = None
    auto: Annotated[int, msgspec.Meta(description="1: transcode when complete (0 or 1)")] = 0
    priority: Annotated[Priority, msgspec.Meta(description="task_priority (higher first)")] = 0
    direct: Annotated[int, msgspec.Meta(description="1: direct-to-OSS upload (OSS only)")] = 0
    ttl: Ttl | None = None
    playback_policy: PolicyParam | None = None
    template: Annotated[
        TemplateNames | None,
        msgspec.Meta(
            description="with auto=1: the transcode template the transcode uses; a comma list"
            " (up to 8) makes several outputs: each further one a new video sharing the upload's"
            " bytes, created when it completes (its answer lists them in outputs)"
        ),
    ] = None
    replace: Annotated[
        Id | None,
        msgspec.Meta(
            description="upload a new source for this video (same app); it keeps playing its"
            " old renditions until the new ones replace them"
        ),
    ] = None


class UploadParams(msgspec.Struct):
    """Query of PUT /video/upload/upload."""

    upid: Upid
    pseq: Annotated[
        Count | None,
        msgspec.Meta(description="part number (1..part_count); absent: whole-file mode"),
    ] = None
    hash: Annotated[str | None, msgspec.Meta(description="MD5 hex of this part's body")] = None
    token: Token | None = None


class ResumeParams(msgspec.Struct):
    """Query of GET /video/upload/resume."""

    upid: Upid
    token: Token | None = None


# answers


class Limits(Answer):
    """Answer of GET /video/upload/limits."""

    max_file_size: int
    min_part_size: int
    max_part_size: int
    max_part_count: int
    upload_ttl: int


class PartUrl(Answer):
    """A presigned URL for one part of a direct upload (PUT without a Content-Type)."""

    pseq: int
    url: str
    size: int
    expires_at: int


class Started(Answer):
    """Init: the upload is open; send its parts."""

    upload_id: str
    vid: int
    status: Literal["uploading"]
    size: int
    md5: Md5Hex | None
    part_size: int
    part_count: int
    expires_at: int
    upload_token: str
    # direct=1 only
    direct: bool | UnsetType = UNSET
    part_urls: list[PartUrl] | UnsetType = UNSET


class Instant(Answer):
    """Init: the same bytes are stored and verified already (instant upload)."""

    vid: int
    status: Literal["uploaded"]
    instant: Literal[True]
    size: int
    md5: Md5Hex
    #: template=a,b on init: each template's video (the first is vid itself).
    outputs: list[Output] | UnsetType = UNSET


class Uploaded(Answer):
    """The upload is complete and verified."""

    upload_id: str
    vid: int
    status: Literal["uploaded"]
    md5: Md5Hex | None
    size: int
    #: template=a,b on init or the ticket: each template's video (the first is vid itself).
    outputs: list[Output] | UnsetType = UNSET


class PartStored(Answer):
    """A part is stored; others are still missing."""

    upload_id: str
    pseq: int
    received: int
    part_count: int


class PartsLost(Answer):
    """Completion found parts that storage lost: send them again."""

    upload_id: str
    received: int
    part_count: int
    missing: list[int]


class OffsetAdvanced(Answer):
    """Whole-file mode: bytes stored contiguously from byte 0."""

    upload_id: str
    offset: int


class Open(Answer):
    """Resume: the upload is open."""

    upload_id: str
    vid: int
    status: Literal["uploading"]
    size: int
    part_size: int
    part_count: int
    received: int
    missing: list[int]
    offset: int
    expires_at: int


class Failed(Answer):
    """Resume: verification failed or the video was deleted."""

    upload_id: str
    status: Literal["upload_failed"]
    vid: int
    error: str | None


#: Every answer a request that stores bytes (or completes) can get.
PUT_ANSWERS = (PartStored, OffsetAdvanced, Uploaded, PartsLost, Open, Failed)
RESUME_ANSWERS = (Open, Uploaded, Failed)
INIT_ANSWERS = (Started, Instant)


# direct-to-OSS uploads and PostObject (docs/OSS.md)


class UrlsParams(msgspec.Struct):
    """Query of GET /video/upload/direct/urls."""

    upid: Upid
    pseqs: Annotated[
        str | None, msgspec.Meta(description="comma list of part numbers", examples=["1,2,3"])
    ] = None


class CompleteParams(msgspec.Struct):
    """Query of POST /video/upload/complete."""

    upid: Upid


class RegisterParams(msgspec.Struct):
    """Query of POST /video/upload/register."""

    key: Annotated[str, msgspec.Meta(description="the key the browser posted to")]
    fn: Annotated[str | None, msgspec.Meta(description="Base64 of the UTF-8 file name")] = None
    hash: Annotated[str | None, msgspec.Meta(description="MD5 hex of the posted file")] = None
    auto: Annotated[int, msgspec.Meta(description="1: transcode when registered (0 or 1)")] = 0
    priority: Annotated[Priority, msgspec.Meta(description="task_priority (higher first)")] = 0
    template: Annotated[
        TemplateNames | None,
        msgspec.Meta(
            description="with auto=1: the transcode template(s), as on init (a comma list makes"
            " several outputs)"
        ),
    ] = None


class DirectUrls(Answer):
    """Fresh presigned part URLs of a direct upload."""

    upload_id: str
    part_count: int
    part_urls: list[PartUrl]
    missing: list[int] | UnsetType = UNSET


class Credentials(Answer):
    """A PostObject policy for one browser upload (OSS's own field names)."""

    access_key_id: str = msgspec.field(name="accessKeyId")
    policy: str
    signature: str
    dir: str
    host: str
    expire: int
    key: str
    max_size: int
    security_token: str | UnsetType = msgspec.field(default=UNSET, name="securityToken")


class Registered(Answer):
    """A posted object registered as a verified video."""

    vid: int
    status: Literal["uploaded"]
    md5: Md5Hex | None
    size: int
    #: template=a,b with auto=1: each template's video (the first is vid itself).
    outputs: list[Output] | UnsetType = UNSET
