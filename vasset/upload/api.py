"""HTTP routes of /video/upload/*: parse, authenticate, hand to the UploadService."""

from __future__ import annotations

from litestar import Request, get, post, put
from litestar.di import NamedDependency

from vasset import errors
from vasset.auth.verify import App
from vasset.http.auth import query_string, raw_path
from vasset.http.body import ClientGone, body_chunks, settle_body
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import TOKEN, doc
from vasset.http.params import query_dict
from vasset.http.schemas import shaped
from vasset.templates.service import upload_options
from vasset.upload import replace
from vasset.upload.schemas import (
    INIT_ANSWERS,
    PUT_ANSWERS,
    RESUME_ANSWERS,
    Failed,
    InitParams,
    Instant,
    Limits,
    OffsetAdvanced,
    Open,
    PartsLost,
    PartStored,
    ResumeParams,
    Started,
    Uploaded,
    UploadParams,
)
from vasset.upload.service import check_md5

UPLOAD_CODES = (errors.UploadNotFound, errors.InvalidUploadToken)
PART_CODES = (
    *UPLOAD_CODES,
    errors.InvalidDigest,
    errors.InvalidPartSize,
    errors.InvalidContentRange,
    errors.IncompleteBody,
    errors.UploadCompleted,
    errors.UploadAborted,
    errors.UploadInProgress,
    errors.OffsetMismatch,
    errors.InvalidState,
    errors.EntityTooLarge,
    errors.HashMismatch,
    errors.SizeMismatch,
)
_EXAMPLE_PART = {"upload_id": "u_7Jc2kQ", "pseq": 1, "received": 1, "part_count": 3}


async def _caller(request: Request, ctx: Ctx, token: str | None) -> tuple[App | None, str | None]:
    """(app, token): a signed call names the app; a token call names only the upload."""
    raw = query_dict(query_string(request))
    if token is not None and "signature" not in raw:
        return None, token
    app = await ctx.auth.verify_signed(request.method, raw_path(request), query_string(request))
    return app, None


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only, BIGINT-sized at most: int() would take "+1", "1_0" or 5,000 digits.
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise errors.InvalidPartSize("Content-Length must be a number of bytes")
    return int(value)


@post(
    "/video/upload/init",
    status_code=200,
    dependencies={"q": query(InitParams, signed=True)},
    **doc(
        tag="uploads",
        query=InitParams,
        codes=(
            errors.InvalidPartSize,
            errors.EntityTooLarge,
            errors.UnknownTemplate,
            errors.VideoNotFound,  # replace=
            errors.InvalidState,  # replace= of a video that is not at rest
        ),
        example={
            "upload_id": "u_7Jc2kQ",
            "vid": 42,
            "status": "uploading",
            "size": 10485760,
            "md5": "9e107d9d372bb6826bd81d3542a419d6",
            "part_size": 4194304,
            "part_count": 3,
            "expires_at": 1700086400,
            "upload_token": "t_3nQ8",
        },
    ),
)
async def init_upload(
    ctx: Ctx, caller: Caller, q: NamedDependency[InitParams]
) -> Started | Instant:
    """Start an upload (or finish it instantly by MD5)."""
    if q.auto not in (0, 1):
        raise errors.InvalidParameter("auto must be 0 or 1", parameter="auto")
    if q.replace is not None:
        # A new source for a kept vid; the video plays on meanwhile (vasset/upload/replace.py).
        answer = await replace.start(ctx.uploads, caller, q.replace, q, check_md5(q.hash))
        return shaped(answer, *INIT_ANSWERS)
    args = (caller, q.fn, q.fsize, q.psize, q.hash, bool(q.auto), q.priority)
    # template=: the automatic transcode's options, kept with the video until it completes.
    options = await upload_options(ctx, caller.id, q.template, bool(q.auto))
    if q.direct:
        if ctx.direct is None:
            raise errors.InvalidParameter(
                "direct uploads need OSS storage; this service stores on local disk",
                parameter="direct",
            )
        return shaped(
            await ctx.direct.init(
                *args, ttl=q.ttl, playback_policy=q.playback_policy, options=options
            ),
            *INIT_ANSWERS,
        )
    return shaped(
        await ctx.uploads.init(
            *args, ttl=q.ttl, playback_policy=q.playback_policy, options=options
        ),
        *INIT_ANSWERS,
    )


@put(
    "/video/upload/upload",
    status_code=200,
    request_max_body_size=None,
    # A refused query still settles the unread body (see settle_body).
    dependencies={"q": query(UploadParams, on_error=settle_body)},
    **doc(
        tag="uploads",
        auth=TOKEN,
        query=UploadParams,
        codes=PART_CODES,
        body="the part's bytes (part mode), or the Content-Range slice (whole-file mode)",
        example=_EXAMPLE_PART,
    ),
)
async def upload_part(
    request: Request, ctx: Ctx, q: NamedDependency[UploadParams]
) -> PartStored | OffsetAdvanced | Uploaded | PartsLost | Open | Failed:
    """Store one part (pseq) or a Content-Range slice of the whole file."""
    try:
        return shaped(await _upload_part(request, ctx, q), *PUT_ANSWERS)
    except errors.VassetError as exc:
        await settle_body(request, exc)
        raise


async def _upload_part(request: Request, ctx: Ctx, q: NamedDependency[UploadParams]) -> dict:
    app, token = await _caller(request, ctx, q.token)
    row = await ctx.uploads.load(q.upid, app, token)
    if app is None:  # a token call: the upload's app must still be enabled
        await ctx.auth.check_app_enabled(row.app_id)
    length = _content_length(request)
    try:
        if q.pseq is not None:
            return await ctx.uploads.put_part(row, q.pseq, q.hash, length, body_chunks(request))
        return await ctx.uploads.put_range(
            row, request.headers.get("content-range"), length, body_chunks(request)
        )
    except ClientGone:
        raise errors.IncompleteBody(
            "the client disconnected mid-body; nothing was stored"
        ) from None


@get(
    "/video/upload/resume",
    dependencies={"q": query(ResumeParams)},
    **doc(
        tag="uploads",
        auth=TOKEN,
        query=ResumeParams,
        codes=(*UPLOAD_CODES, errors.UploadInProgress, errors.HashMismatch, errors.SizeMismatch),
    ),
)
async def resume_upload(
    request: Request, ctx: Ctx, q: NamedDependency[ResumeParams]
) -> Open | Uploaded | Failed:
    """Which parts are missing and the contiguous offset."""
    app, token = await _caller(request, ctx, q.token)
    row = await ctx.uploads.load(q.upid, app, token)
    if app is None:  # a token call: the upload's app must still be enabled
        await ctx.auth.check_app_enabled(row.app_id)
    return shaped(await ctx.uploads.resume(row), *RESUME_ANSWERS)


@get("/video/upload/limits", **doc(tag="uploads"))
async def upload_limits(ctx: Ctx, caller: Caller) -> Limits:
    """The configured upload limits."""
    return shaped(ctx.uploads.limits(), Limits)


ROUTES = [init_upload, upload_part, resume_upload, upload_limits]
