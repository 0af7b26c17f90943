"""Serving stored objects under signed /play URLs: Range, HEAD, ETag, a stream cap, HLS.

On local disk the API is the file server. On OSS, MP4s and snapshots go straight to OSS with
presigned URLs; only HLS playlists come here, rewritten so every segment they name is a
presigned OSS URL (variant playlists stay relative, under the same signed /play prefix).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import unquote

from litestar import Request, Response, route
from litestar.params import FromPath

from vasset import errors
from vasset.captions.hls import served_playlist
from vasset.http.deps import Ctx
from vasset.http.openapi import PUBLIC, doc
from vasset.playback import urls
from vasset.playback.blocks import FileBlocks
from vasset.playback.storyboard import is_storyboard_vtt, presigned_vtt
from vasset.playback.stream import READ_SIZE, ObjectBody, ObjectStream
from vasset.storage.base import BlobStore
from vasset.storage.local import guess_content_type

if TYPE_CHECKING:
    from vasset.context import Context

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_MAX_DIGITS = 19
_MAX_KEY_BYTES = 1023  # OSS's longest object key
_MAX_NAME_BYTES = 255  # the longest file name of Linux file systems
_URI_ATTR = re.compile(r'URI="([^"]+)"')
#: What /play serves (vasset/storage/local.py's content types).
PLAY_TYPES = (
    "video/mp4",
    "application/vnd.apple.mpegurl",
    "video/mp2t",
    "video/iso.segment",
    "image/jpeg",
    "image/webp",
    "application/json",
    "text/vtt",
    "application/octet-stream",
)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single byte range; None for no or multiple ranges."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise errors.InvalidRange()
    first, last = match.groups()
    # No object is 10**19 bytes long: longer numbers are refused before int() has to parse them.
    if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
        raise errors.InvalidRange()
    if not first:
        length = int(last)
        if length == 0:
            raise errors.InvalidRange()
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise errors.InvalidRange()
    return start, end


def servable_key(key: str) -> bool:
    """Whether key can name a stored object; anything else is a 404, never a storage error.

    An HLS signature covers a whole prefix, so the rest of the key is client text: it may hold
    NUL or control characters, or names longer than a file system or OSS accepts.
    """
    # isprintable first: it refuses NUL, control characters and lone surrogates (no UTF-8).
    if not key or not key.isprintable() or len(key.encode()) > _MAX_KEY_BYTES:
        return False
    return all(
        part not in ("", ".", "..") and len(part.encode()) <= _MAX_NAME_BYTES
        for part in key.split("/")
    )


def _rewrite_playlist(store: BlobStore, text: str, key: str, expires_at: int) -> str:
    """Point every segment URI of a variant playlist at a presigned OSS URL."""
    base = key.rsplit("/", 1)[0] + "/"

    def sign(uri: str) -> str:
        if "://" in uri or uri.endswith(".m3u8"):
            return uri  # variant playlists stay relative: they come back here, still signed
        return store.presign_get(base + uri, expires_at) or uri

    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            line = _URI_ATTR.sub(lambda m: f'URI="{sign(m.group(1))}"', line)
        elif line.strip():
            line = sign(line.strip())
        lines.append(line)
    return "\n".join(lines) + "\n"


async def _open_range(
    store: BlobStore, key: str, start: int, end: int
) -> AsyncIterator[bytes | memoryview]:
    """The blocks of start..end of key: straight from its file on local disk, else the store's."""
    path = store.local_path(key)
    if path is None:
        return store.read(key, start, end, chunk_size=READ_SIZE)
    return await FileBlocks.open(path, start, end, READ_SIZE)


@route(
    "/play/{expires_at:int}/{signature:str}/{key:path}",
    http_method=["GET", "HEAD"],
    **doc(
        tag="playback",
        auth=PUBLIC,
        codes=(
            errors.InvalidParameter,
            errors.InvalidUrlSignature,
            errors.ObjectNotFound,
            errors.InvalidRange,
            errors.Throttled,
        ),
        binary=PLAY_TYPES,
    ),
)
async def play_file(
    request: Request,
    ctx: Ctx,
    expires_at: FromPath[int],
    signature: FromPath[str],
    key: FromPath[str],
) -> Response:
    """A stored object under a signed, expiring URL (the URLs playurl and snapshot answer).

    Supports HEAD, one byte range (206, 416) and If-None-Match (304).
    """
    key = unquote(key.lstrip("/"))
    secret = await ctx.playback.secret()
    if not urls.verify(secret, key, expires_at, signature, time.time()):
        raise errors.InvalidUrlSignature()
    if not servable_key(key):
        raise errors.ObjectNotFound()
    if key.endswith(".m3u8"):
        # A master gets the video's captions (SUBTITLES); subs/{lang}.m3u8 is made here.
        made = await served_playlist(ctx, key, lambda k: ctx.playback.sign(k, expires_at))
        if made is not None:
            if ctx.store.presigns:
                made = _rewrite_playlist(ctx.store, made, key, expires_at)
            return Response(
                content=made,
                media_type=guess_content_type(key),
                headers={"Cache-Control": "private, no-cache"},
            )
    cache = f"private, max-age={max(0, expires_at - int(time.time()))}"
    return await serve_object(request, ctx, key, cache, "private, no-cache", expires_at)


async def serve_object(
    request: Request,
    ctx: Context,
    key: str,
    cache: str,
    playlist_cache: str,
    presign_until: int | None,
) -> Response:
    """The response for a servable key (/play and /pub): cache headers as given; with
    presign_until, an OSS playlist's segments become presigned URLs valid until then."""
    info = await ctx.store.head(key)
    if info is None:
        raise errors.ObjectNotFound()
    content_type = guess_content_type(key)
    # A playlist grows while its video is published progressively: players must reload it.
    base_headers = {"Cache-Control": playlist_cache if key.endswith(".m3u8") else cache}
    if key.endswith(".m3u8") and ctx.store.presigns and presign_until is not None:
        expires_at = presign_until
        data = b"".join([chunk async for chunk in ctx.store.read(key)])
        playlist = _rewrite_playlist(ctx.store, data.decode(), key, expires_at)
        return Response(content=playlist, media_type=content_type, headers=base_headers)
    if is_storyboard_vtt(key) and ctx.store.presigns and presign_until is not None:
        # Its cues name sheets relatively; on OSS those would not resolve: presign them.
        text = await presigned_vtt(ctx.store, key, presign_until)
        return Response(content=text, media_type=content_type, headers=base_headers)
    etag = f'"{info.etag}"'
    headers = {**base_headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if request.headers.get("if-none-match") in (etag, "*"):
        return Response(content=b"", status_code=304, headers=headers)
    try:
        byte_range = parse_range(request.headers.get("range"), info.size)
    except errors.InvalidRange as exc:
        exc.extra_headers["Content-Range"] = f"bytes */{info.size}"
        raise
    start, end = byte_range or (0, info.size - 1)
    status = 206 if byte_range else 200
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or info.size == 0:
        return Response(content=b"", status_code=status, headers=headers, media_type=content_type)
    slot = await ctx.streams.acquire()
    source: AsyncIterator[bytes | memoryview] | None = None
    try:
        source = await _open_range(ctx.store, key, start, end)
        pace = await ctx.streams.pacer(key)
        # The first read happens here, so an object that vanished since HEAD is still a 404.
        first = await anext(source, None)
        if first is None:
            raise errors.ObjectNotFound()
    except BaseException:
        slot.release()
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    body = ObjectBody(first, source, end - start + 1, slot, pace)
    return ObjectStream(body, status_code=status, headers=headers, media_type=content_type)
