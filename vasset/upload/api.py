"""HTTP routes of /video/upload/*: parse, authenticate, hand to the UploadService."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post, put

from vasset import errors
from vasset.http.auth import ctx_of, query_string, signed_app
from vasset.http.body import ClientGone, body_chunks
from vasset.http.params import Count, Priority, parse_params, query_dict
from vasset.http.responses import json_response


class InitParams(msgspec.Struct):
    """Query of POST /video/upload/init."""

    fn: str
    fsize: Count
    psize: Count
    hash: str | None = None
    auto: int = msgspec.field(default=0)
    priority: Priority = 0
    direct: int = 0


class UploadParams(msgspec.Struct):
    """Query of PUT /video/upload/upload."""

    upid: str
    pseq: Count | None = None
    hash: str | None = None
    token: str | None = None


class ResumeParams(msgspec.Struct):
    """Query of GET /video/upload/resume."""

    upid: str
    token: str | None = None


async def _caller(request: Request, token: str | None):
    """(app, token): a signed call names the app; a token call names only the upload."""
    raw = query_dict(query_string(request))
    if token is not None and "signature" not in raw:
        return None, token
    return await signed_app(request), None


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only, BIGINT-sized at most: int() would take "+1", "1_0" or 5,000 digits.
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise errors.InvalidPartSize("Content-Length must be a number of bytes")
    return int(value)


@post("/video/upload/init", status_code=200)
async def init_upload(request: Request) -> Response:
    """Start an upload (or finish it instantly by MD5)."""
    app = await signed_app(request)
    p = parse_params(query_string(request), InitParams)
    if p.auto not in (0, 1):
        raise errors.InvalidParameter("auto must be 0 or 1", parameter="auto")
    ctx = ctx_of(request)
    if p.direct:
        direct = ctx.extras.get("direct_uploads")
        if direct is None:
            raise errors.InvalidParameter(
                "direct uploads need OSS storage; this service stores on local disk",
                parameter="direct",
            )
        return json_response(
            await direct.init(app, p.fn, p.fsize, p.psize, p.hash, bool(p.auto), p.priority)
        )
    answer = await ctx.uploads.init(app, p.fn, p.fsize, p.psize, p.hash, bool(p.auto), p.priority)
    return json_response(answer)


@put("/video/upload/upload", status_code=200, request_max_body_size=None)
async def upload_part(request: Request) -> Response:
    """Store one part (pseq) or a Content-Range slice of the whole file."""
    try:
        return await _upload_part(request)
    except errors.VassetError as exc:
        # The body may be unread: drain a little so keep-alive works, else close the connection.
        body_done = request.scope.get("state", {}).get("body_done") is True
        if not body_done and not await _drain(request, limit=1 << 20):
            exc.extra_headers["Connection"] = "close"
        raise


async def _drain(request: Request, limit: int) -> bool:
    """Read and drop up to limit body bytes; True if the body ended within the limit."""
    length = request.headers.get("content-length")
    # A length of thousands of digits is simply too long (int() would refuse it: a 500).
    if length is not None and (
        len(length) > 18 or (length.isdecimal() and length.isascii() and int(length) > limit)
    ):
        return False
    seen = 0
    try:
        async for chunk in body_chunks(request):
            seen += len(chunk)
            if seen > limit:
                return False
    except (ClientGone, RuntimeError):
        return False
    return True


async def _upload_part(request: Request) -> Response:
    p = parse_params(query_string(request), UploadParams)
    app, token = await _caller(request, p.token)
    ctx = ctx_of(request)
    row = await ctx.uploads.load(p.upid, app, token)
    if app is None:  # a token call: the upload's app must still be enabled
        await ctx.auth.check_app_enabled(row.app_id)
    length = _content_length(request)
    try:
        if p.pseq is not None:
            answer = await ctx.uploads.put_part(row, p.pseq, p.hash, length, body_chunks(request))
        else:
            answer = await ctx.uploads.put_range(
                row, request.headers.get("content-range"), length, body_chunks(request)
            )
    except ClientGone:
        raise errors.IncompleteBody(
            "the client disconnected mid-body; nothing was stored"
        ) from None
    return json_response(answer)


@get("/video/upload/resume")
async def resume_upload(request: Request) -> Response:
    """Which parts are missing and the contiguous offset."""
    p = parse_params(query_string(request), ResumeParams)
    app, token = await _caller(request, p.token)
    ctx = ctx_of(request)
    row = await ctx.uploads.load(p.upid, app, token)
    if app is None:  # a token call: the upload's app must still be enabled
        await ctx.auth.check_app_enabled(row.app_id)
    return json_response(await ctx.uploads.resume(row))


@get("/video/upload/limits")
async def upload_limits(request: Request) -> Response:
    """The configured upload limits."""
    await signed_app(request)
    return json_response(ctx_of(request).uploads.limits())


ROUTES = [init_upload, upload_part, resume_upload, upload_limits]
