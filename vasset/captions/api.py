"""HTTP routes of /video/captions: parse the query and the (size-limited) body, then delegate."""

from __future__ import annotations

from litestar import Request, get, post, put
from litestar.di import NamedDependency

from vasset import errors
from vasset.captions.schemas import (
    CaptionDeleted,
    CaptionDeleteParams,
    CaptionList,
    CaptionListParams,
    CaptionPutParams,
    CaptionStored,
)
from vasset.http.auth import query_string, raw_path
from vasset.http.body import ClientGone, body_chunks, settle_body
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.params import parse_params
from vasset.http.schemas import shaped

PUT_CODES = (
    errors.VideoNotFound,
    errors.InvalidCaptions,
    errors.IncompleteBody,
    errors.EntityTooLarge,
)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with EntityTooLarge as soon as it passes limit bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (
        len(declared) > 18 or (declared.isdigit() and int(declared) > limit)
    ):
        raise errors.EntityTooLarge(f"captions are limited to {limit} bytes", max_size=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in body_chunks(request):
            size += len(chunk)
            if size > limit:
                raise errors.EntityTooLarge(
                    f"captions are limited to {limit} bytes", max_size=limit
                )
            chunks.append(chunk)
    except ClientGone:
        raise errors.IncompleteBody(
            "the client disconnected mid-body; nothing was stored"
        ) from None
    return b"".join(chunks)


@put(
    "/video/captions",
    status_code=200,
    request_max_body_size=None,  # read_body enforces captions_max_bytes itself
    **doc(
        tag="captions",
        query=CaptionPutParams,
        codes=PUT_CODES,
        body="a WebVTT or SRT file, UTF-8 (SRT is converted to WebVTT)",
        example={
            "vid": 42,
            "lang": "en",
            "label": "English",
            "source_format": "srt",
            "cues": 120,
            "size": 5230,
        },
    ),
)
async def captions_put(request: Request, ctx: Ctx) -> CaptionStored:
    """Add or replace the captions of one language (atomically)."""
    try:
        # Signed first, parsed after (an unsigned call learns nothing), and every refusal
        # settles the unread body so the connection stays usable.
        raw = query_string(request)
        caller = await ctx.auth.verify_signed(request.method, raw_path(request), raw)
        q = parse_params(raw, CaptionPutParams)
        body = await read_body(request, ctx.settings.captions_max_bytes)
        answer = await ctx.captions.put(caller.id, q.vid, q.lang, q.label, body)
    except errors.VassetError as exc:
        await settle_body(request, exc)
        raise
    return shaped(answer, CaptionStored)


@get(
    "/video/captions",
    dependencies={"q": query(CaptionListParams, signed=True)},
    **doc(
        tag="captions",
        query=CaptionListParams,
        codes=(errors.VideoNotFound,),
        example={
            "vid": 42,
            "captions": [
                {
                    "lang": "en",
                    "label": "English",
                    "url": "http://127.0.0.1:8000/play/1700003600/5d1e.../captions/42/9f3c.vtt",
                    "expires_at": 1700003600,
                }
            ],
        },
    ),
)
async def captions_list(
    ctx: Ctx, caller: Caller, q: NamedDependency[CaptionListParams]
) -> CaptionList:
    """The video's captions, each with a signed, expiring WebVTT URL."""
    return shaped(await ctx.captions.tracks(caller.id, q.vid, q.expires), CaptionList)


@post(
    "/video/captions/delete",
    status_code=200,
    dependencies={"q": query(CaptionDeleteParams, signed=True)},
    **doc(
        tag="captions",
        query=CaptionDeleteParams,
        codes=(errors.VideoNotFound, errors.CaptionNotFound),
        example={"vid": 42, "lang": "en", "deleted": True},
    ),
)
async def captions_delete(
    ctx: Ctx, caller: Caller, q: NamedDependency[CaptionDeleteParams]
) -> CaptionDeleted:
    """Remove one language's captions."""
    return shaped(await ctx.captions.delete(caller.id, q.vid, q.lang), CaptionDeleted)


ROUTES = [captions_put, captions_list, captions_delete]
