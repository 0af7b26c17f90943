"""HTTP routes of direct uploads (bytes straight to OSS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import get, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped
from vasset.templates.service import upload_options
from vasset.upload.api import PART_CODES
from vasset.upload.schemas import (
    CompleteParams,
    Credentials,
    DirectUrls,
    PartsLost,
    Registered,
    RegisterParams,
    Uploaded,
    UrlsParams,
)

if TYPE_CHECKING:
    from vasset.upload.direct import DirectUploads  # imports oss2: only on OSS deployments

_CODES = (errors.UploadNotFound, errors.UploadCompleted, errors.UploadAborted)


def _direct(ctx: Ctx) -> DirectUploads:
    if ctx.direct is None:
        raise errors.InvalidParameter(
            "direct uploads need OSS storage; this service stores on local disk"
        )
    return ctx.direct


def _pseqs(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise errors.InvalidParameter(
            "pseqs must be a comma-separated list of part numbers", parameter="pseqs"
        ) from None


@get(
    "/video/upload/direct/urls",
    dependencies={"q": query(UrlsParams, signed=True)},
    **doc(tag="direct", query=UrlsParams, codes=_CODES),
)
async def direct_urls(ctx: Ctx, caller: Caller, q: NamedDependency[UrlsParams]) -> DirectUrls:
    """Fresh presigned part URLs: for pseqs, or for every part OSS does not hold yet."""
    answer = await _direct(ctx).part_urls(caller, q.upid, _pseqs(q.pseqs))
    return shaped(answer, DirectUrls)


@post(
    "/video/upload/complete",
    status_code=200,
    dependencies={"q": query(CompleteParams, signed=True)},
    **doc(tag="direct", query=CompleteParams, codes=PART_CODES),
)
async def direct_complete(
    ctx: Ctx, caller: Caller, q: NamedDependency[CompleteParams]
) -> Uploaded | PartsLost:
    """Verify a direct upload's parts and the whole file, then publish the video."""
    return shaped(await _direct(ctx).complete(caller, q.upid), Uploaded, PartsLost)


@get("/api/oss/credentials", **doc(tag="direct"))
async def oss_credentials(ctx: Ctx, caller: Caller) -> Credentials:
    """A PostObject policy for one browser upload of a small video."""
    return shaped(_direct(ctx).credentials(caller), Credentials)


@post(
    "/video/upload/register",
    status_code=200,
    dependencies={"q": query(RegisterParams, signed=True)},
    **doc(
        tag="direct",
        query=RegisterParams,
        codes=(
            errors.ObjectNotFound,
            errors.InvalidPartSize,
            errors.InvalidState,
            errors.EntityTooLarge,
            errors.HashMismatch,
            errors.UploadInProgress,
        ),
    ),
)
async def register_posted(
    ctx: Ctx, caller: Caller, q: NamedDependency[RegisterParams]
) -> Registered:
    """Register an object uploaded with PostObject as a video (after hashing it)."""
    if q.auto not in (0, 1):
        raise errors.InvalidParameter("auto must be 0 or 1", parameter="auto")
    options = await upload_options(ctx, caller.id, q.template, bool(q.auto))
    answer = await _direct(ctx).register(
        caller, q.key, q.fn, q.hash, bool(q.auto), q.priority, options
    )
    return shaped(answer, Registered)


ROUTES = [direct_urls, direct_complete, oss_credentials, register_posted]
