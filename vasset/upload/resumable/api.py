"""HTTP routes of tus 1.0 and the IETF resumable-upload draft, at VASSET_TUS_PATH (/files/).

The handlers only parse headers into the calls of service.py and shape the answers
(answers.py); which protocol a request speaks is decided by Upload-Draft-Interop-Version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar import Request, Response, post, route
from litestar.di import NamedDependency
from litestar.params import FromPath

from vasset import errors
from vasset.http.auth import query_string, raw_path
from vasset.http.body import ClientGone, body_chunks, settle_body
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.params import parse_params
from vasset.settings import Settings
from vasset.templates.service import upload_options
from vasset.upload.resumable import answers, headers
from vasset.upload.resumable.answers import base_headers, empty, state_headers
from vasset.upload.resumable.schemas import SignedCreation, Ticket, TicketParams, UploadState
from vasset.upload.resumable.service import Creation, Creator
from vasset.upload.resumable.tickets import TicketRequest
from vasset.upload.stream import BodyReader

log = structlog.get_logger(__name__)

OFFSET_STREAM = "application/offset+octet-stream"
Handler = Callable[[Request, Any, str, int | None], Awaitable[Response]]


@post(
    "/video/upload/ticket",
    status_code=200,
    dependencies={"q": query(TicketParams, signed=True)},
    **doc(
        tag="uploads",
        query=TicketParams,
        codes=(errors.UnknownTemplate,),
        example={"ticket": "vt_Zk3...", "expires_at": 1700003600, "endpoint": "/files/"},
    ),
)
async def upload_ticket(ctx: Ctx, caller: Caller, q: NamedDependency[TicketParams]) -> Ticket:
    """A ticket for tus / IETF uploads (Authorization: Bearer), shown once."""
    asked = TicketRequest(
        max_size=q.max_size,
        auto=bool(q.auto),
        priority=q.priority,
        expires=q.expires,
        uses=q.uses,
        ttl=q.ttl,
        options=await upload_options(ctx, caller.id, q.template, bool(q.auto)),
        playback_policy=q.playback_policy,
    )
    return Ticket(**await ctx.tickets.issue(caller, asked))


def protocol_of(request: Request) -> int | None:
    """The IETF interop version, or None for tus (then Tus-Resumable must be 1.0.0)."""
    version = headers.interop_version(request.headers.get("upload-draft-interop-version"))
    if version is None and request.headers.get("tus-resumable") != answers.TUS_VERSION:
        raise errors.TusVersionUnsupported()
    return version


def _content_length(request: Request) -> int | None:
    return headers.non_negative("Content-Length", request.headers.get("content-length"), False)


def _location(request: Request, settings: Settings, upload_id: str) -> str:
    base = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"
    return f"{base}{settings.tus_path}{upload_id}"


async def _guarded(request: Request, call: Callable[[int | None], Awaitable[Response]]) -> Response:
    """Run a protocol call; refusals get the protocol's error shape and an unread body settles."""
    version: int | None = None
    try:
        version = protocol_of(request)
        return await call(version)
    except errors.VassetError as exc:
        await settle_body(request, exc)
        return answers.failure(request, exc, version)
    except ClientGone:
        log.info("resumable_body_cut", path=request.url.path)
        return empty(400, {"Connection": "close"})


async def _options(request: Request, ctx: Ctx) -> Response:
    settings = ctx.settings
    limit = str(settings.max_file_size)
    out = {
        **answers.preflight(request),
        "Tus-Resumable": answers.TUS_VERSION,
        "Tus-Version": answers.TUS_VERSION,
        "Tus-Extension": answers.EXTENSIONS,
        "Tus-Max-Size": limit,
        "Tus-Checksum-Algorithm": ",".join(headers.CHECKSUM_ALGORITHMS),
        "Upload-Limit": f"max-size={limit}",
    }
    return empty(204, out)


async def _create(request: Request, ctx: Ctx, version: int | None) -> Response:
    svc = ctx.resumable
    who = await _creator(request, ctx)
    h = request.headers
    meta_raw = h.get("upload-metadata")
    metadata = headers.metadata(meta_raw, ctx.settings.tus_metadata_max)
    concat = headers.concat(h.get("upload-concat")) if version is None else None
    length = headers.non_negative("Upload-Length", h.get("upload-length"), False)
    completes = headers.upload_complete(version, dict(h)) if version is not None else None
    body_length = _content_length(request)
    if version is None:
        deferred = h.get("upload-defer-length")
        if deferred is not None and deferred.strip() != "1":
            raise errors.InvalidHeader(
                "Upload-Defer-Length must be 1", header="Upload-Defer-Length"
            )
        if deferred is not None and length is not None:
            raise errors.InvalidHeader(
                "send Upload-Length or Upload-Defer-Length, not both", header="Upload-Length"
            )
        is_final = concat is not None and concat[0] == "final"
        if is_final and length is not None:
            raise errors.InvalidHeader(
                "a final upload takes its length from its parts", header="Upload-Length"
            )
        if length is None and deferred is None and not is_final:
            raise errors.InvalidHeader(
                "send Upload-Length or Upload-Defer-Length: 1", header="Upload-Length"
            )
    elif completes is None:
        raise errors.InvalidHeader("Upload-Complete is required", header="Upload-Complete")
    elif completes and body_length is not None:
        if length is not None and length != body_length:
            raise errors.InconsistentLength("Upload-Length differs from the complete body's size")
        length = body_length
    spec = Creation(
        protocol="tus" if version is None else "ietf",
        length=length,
        metadata=metadata,
        raw_metadata=meta_raw.strip() if meta_raw else None,
        concat=concat[0] if concat else None,
        parts=concat[1] if concat else [],
    )
    row = await svc.create(who, spec)
    has_body = bool(body_length) or (body_length is None and "transfer-encoding" in h)
    if version is None and has_body and h.get("content-type") != OFFSET_STREAM:
        has_body = False  # creation-with-upload needs the tus body type; others are ignored
    if has_body or completes:
        row = await svc.append(
            row,
            BodyReader(body_chunks(request)),
            0,
            body_length,
            headers.checksum(h.get("upload-checksum")) if version is None else None,
            completes=bool(completes),
        )
    out = {
        **base_headers(request, version),
        **state_headers(row, version),
        "Location": _location(request, ctx.settings, row.upload_id),
    }
    return empty(201, out)


async def _creator(request: Request, ctx: Ctx) -> Creator:
    """A ticket's app and limits, or a signed call's app and query."""
    authorization = request.headers.get("authorization")
    if authorization:
        ticket = await ctx.tickets.check(authorization)
        app = await ctx.auth.check_app_enabled(ticket.app_id)
        return Creator(
            app=app, ticket=ticket, auto=ticket.auto_transcode, priority=ticket.task_priority
        )
    if not query_string(request):
        raise errors.InvalidTicket()
    app = await ctx.auth.verify_signed(request.method, raw_path(request), query_string(request))
    q = parse_params(query_string(request), SignedCreation)
    return Creator(app=app, ticket=None, auto=bool(q.auto), priority=q.priority)


async def _head(request: Request, ctx: Ctx, upload_id: str, version: int | None) -> Response:
    row = await _authorized(request, ctx, upload_id)
    ctx.resumable.check_alive(row)
    if row.upload.status == "uploading" and (row.complete or row.concat == "final"):
        row = await ctx.resumable.settle(row)
    status = 200 if version is None else 204
    return empty(status, {**base_headers(request, version), **state_headers(row, version)})


async def _patch(request: Request, ctx: Ctx, upload_id: str, version: int | None) -> Response:
    h = request.headers
    row = await _authorized(request, ctx, upload_id)
    if version is None and h.get("content-type", "").split(";")[0].strip() != OFFSET_STREAM:
        raise errors.UnsupportedMediaType()
    if row.concat == "final":
        raise errors.InvalidState("a final upload takes no PATCH: its bytes come from its parts")
    offset = headers.non_negative("Upload-Offset", h.get("upload-offset"))
    assert offset is not None
    completes = False
    if version is not None:
        flag = headers.upload_complete(version, dict(h))
        if flag is None:
            raise errors.InvalidHeader("Upload-Complete is required", header="Upload-Complete")
        completes = flag
    row = await ctx.resumable.append(
        row,
        BodyReader(body_chunks(request)),
        offset,
        _content_length(request),
        headers.checksum(h.get("upload-checksum")) if version is None else None,
        length=headers.non_negative("Upload-Length", h.get("upload-length"), False),
        completes=completes,
    )
    return empty(204, {**base_headers(request, version), **state_headers(row, version)})


async def _delete(request: Request, ctx: Ctx, upload_id: str, version: int | None) -> Response:
    row = await _authorized(request, ctx, upload_id)
    await ctx.resumable.terminate(row)
    return empty(204, base_headers(request, version))


async def _authorized(request: Request, ctx: Ctx, upload_id: str) -> Any:
    row = await ctx.resumable.authorize(upload_id, request.headers.get("authorization"))
    await ctx.auth.check_app_enabled(row.upload.app_id)
    return row


_BY_METHOD: dict[str, Handler] = {"HEAD": _head, "PATCH": _patch, "DELETE": _delete}


def routes(settings: Settings) -> list[Any]:
    """The protocol routes at the configured prefix (built per app: the prefix is a setting)."""
    prefix = settings.tus_path.rstrip("/")
    item = prefix + "/{upload_id:str}"
    common: dict[str, Any] = {"include_in_schema": False, "request_max_body_size": None}

    @route(prefix, http_method=["OPTIONS"], **common)
    async def tus_options(request: Request, ctx: Ctx) -> Response:
        """Capabilities (and CORS preflight) of the upload endpoint."""
        return await _options(request, ctx)

    @route(item, http_method=["OPTIONS"], **common)
    async def tus_item_options(request: Request, ctx: Ctx, upload_id: FromPath[str]) -> Response:
        """Capabilities (and CORS preflight) of one upload URL."""
        return await _options(request, ctx)

    @route(prefix, http_method=["POST"], **common)
    async def tus_create(request: Request, ctx: Ctx) -> Response:
        """Create an upload (tus creation, or the IETF draft's upload creation)."""
        return await _guarded(request, lambda version: _create(request, ctx, version))

    @route(item, http_method=["HEAD", "PATCH", "DELETE", "POST"], **common)
    async def tus_item(request: Request, ctx: Ctx, upload_id: FromPath[str]) -> Response:
        """HEAD, PATCH or DELETE one upload (POST with X-HTTP-Method-Override acts as those)."""
        method: str = request.method
        if method == "POST":
            method = (request.headers.get("x-http-method-override") or "").upper()
        handler = _BY_METHOD.get(method)
        if handler is None:
            return answers.failure(
                request, errors.MethodNotAllowed("use HEAD, PATCH or DELETE"), None
            )
        return await _guarded(request, lambda version: handler(request, ctx, upload_id, version))

    @route(item, http_method=["GET"], **common)
    async def tus_state(request: Request, ctx: Ctx, upload_id: FromPath[str]) -> Response:
        """The upload's state as JSON (vid, offset, and md5 once it is complete)."""
        try:
            row = await _authorized(request, ctx, upload_id)
        except errors.VassetError as exc:
            return answers.failure(request, exc, None)
        return Response(
            content=UploadState.of(row),
            headers=base_headers(request, None),
            media_type="application/json",
        )

    return [upload_ticket, tus_options, tus_item_options, tus_create, tus_item, tus_state]
