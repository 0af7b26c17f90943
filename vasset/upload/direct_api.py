"""HTTP routes of direct uploads (bytes straight to OSS) and the process metrics."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from vasset import errors
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped
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
    answer = await _direct(ctx).register(caller, q.key, q.fn, q.hash, bool(q.auto), q.priority)
    return shaped(answer, Registered)


def _metrics_allowed(request: Request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Digests, so the comparison takes the same time whatever the lengths.
    expected = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(expected, hashlib.sha256(given.strip().encode()).digest())


@get("/internal/metrics", include_in_schema=False)
async def metrics(request: Request, ctx: Ctx) -> Response:
    """This process's counters in Prometheus text format, for holders of VASSET_METRICS_TOKEN."""
    # Off unless configured, and indistinguishable from an unknown path without the token.
    if not _metrics_allowed(request, ctx.settings.metrics_token):
        raise errors.NotFound("Not Found")
    counters = {"vasset_upload_bytes_received_total": ctx.uploads.bytes_received}
    if ctx.direct is not None:
        counters.update(ctx.direct.metrics())
    lines = []
    for name, value in counters.items():
        lines += [f"# TYPE {name} counter", f"{name} {value}"]
    return Response(
        content="\n".join(lines) + "\n",
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


ROUTES = [direct_urls, direct_complete, oss_credentials, register_posted, metrics]
