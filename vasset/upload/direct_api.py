"""HTTP routes of direct uploads (bytes straight to OSS) and the process metrics."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import msgspec
from litestar import Request, Response, get, post

from vasset import errors
from vasset.http.auth import ctx_of, query_string, signed_app
from vasset.http.params import Priority, parse_params
from vasset.http.responses import json_response

if TYPE_CHECKING:
    from vasset.upload.direct import DirectUploads  # imports oss2: only on OSS deployments


class UrlsParams(msgspec.Struct):
    """Query of GET /video/upload/direct/urls."""

    upid: str
    pseqs: str | None = None


class CompleteParams(msgspec.Struct):
    """Query of POST /video/upload/complete."""

    upid: str


class RegisterParams(msgspec.Struct):
    """Query of POST /video/upload/register."""

    key: str
    fn: str | None = None
    hash: str | None = None
    auto: int = 0
    priority: Priority = 0


def _direct(request: Request) -> DirectUploads:
    direct = ctx_of(request).extras.get("direct_uploads")
    if direct is None:
        raise errors.InvalidParameter(
            "direct uploads need OSS storage; this service stores on local disk"
        )
    return direct


def _pseqs(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise errors.InvalidParameter(
            "pseqs must be a comma-separated list of part numbers", parameter="pseqs"
        ) from None


@get("/video/upload/direct/urls")
async def direct_urls(request: Request) -> Response:
    """Fresh presigned part URLs: for pseqs, or for every part OSS does not hold yet."""
    app = await signed_app(request)
    p = parse_params(query_string(request), UrlsParams)
    return json_response(await _direct(request).part_urls(app, p.upid, _pseqs(p.pseqs)))


@post("/video/upload/complete", status_code=200)
async def direct_complete(request: Request) -> Response:
    """Verify a direct upload's parts and the whole file, then publish the video."""
    app = await signed_app(request)
    p = parse_params(query_string(request), CompleteParams)
    return json_response(await _direct(request).complete(app, p.upid))


@get("/api/oss/credentials")
async def oss_credentials(request: Request) -> Response:
    """A PostObject policy for one browser upload of a small video."""
    app = await signed_app(request)
    return json_response(_direct(request).credentials(app))


@post("/video/upload/register", status_code=200)
async def register_posted(request: Request) -> Response:
    """Register an object uploaded with PostObject as a video (after hashing it)."""
    app = await signed_app(request)
    p = parse_params(query_string(request), RegisterParams)
    if p.auto not in (0, 1):
        raise errors.InvalidParameter("auto must be 0 or 1", parameter="auto")
    direct = _direct(request)
    return json_response(await direct.register(app, p.key, p.fn, p.hash, bool(p.auto), p.priority))


def _metrics_allowed(request: Request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Digests, so the comparison takes the same time whatever the lengths.
    expected = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(expected, hashlib.sha256(given.strip().encode()).digest())


@get("/internal/metrics")
async def metrics(request: Request) -> Response:
    """This process's counters in Prometheus text format, for holders of VASSET_METRICS_TOKEN."""
    ctx = ctx_of(request)
    # Off unless configured, and indistinguishable from an unknown path without the token.
    if not _metrics_allowed(request, ctx.settings.metrics_token):
        raise errors.NotFound("Not Found")
    counters = {"vasset_upload_bytes_received_total": ctx.uploads.bytes_received}
    direct = ctx.extras.get("direct_uploads")
    if direct is not None:
        counters.update(direct.metrics())
    lines = []
    for name, value in counters.items():
        lines += [f"# TYPE {name} counter", f"{name} {value}"]
    return Response(
        content="\n".join(lines) + "\n",
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


ROUTES = [direct_urls, direct_complete, oss_credentials, register_posted, metrics]
