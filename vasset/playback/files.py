"""Serving stored objects under signed /play URLs: Range, HEAD, ETag, a stream cap, HLS.

On local disk the API is the file server. On OSS, MP4s and snapshots go straight to OSS with
presigned URLs; only HLS playlists come here, rewritten so every segment they name is a
presigned OSS URL (variant playlists stay relative, under the same signed /play prefix).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from urllib.parse import unquote

from litestar import Request, Response, route
from litestar.response import Stream

from vasset import errors
from vasset.http.auth import ctx_of
from vasset.playback import urls
from vasset.storage.local import guess_content_type

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_URI_ATTR = re.compile(r'URI="([^"]+)"')


class StreamLimiter:
    """Caps concurrent file streams of this API instance (the original "max 50 downloads")."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def enter(self) -> None:
        """Take a stream slot or raise Throttled."""
        if self.active >= self.limit:
            raise errors.Throttled("too many concurrent file streams; retry shortly", retry_after=1)
        self.active += 1

    def leave(self) -> None:
        """Give the slot back."""
        self.active -= 1


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single byte range; None for no or multiple ranges."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise errors.RangeNotSatisfiable()
    first, last = match.groups()
    if not first:
        length = int(last)
        if length == 0:
            raise errors.RangeNotSatisfiable()
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise errors.RangeNotSatisfiable()
    return start, end


class PrefetchedStream:
    """Reads the next chunk while the current one is sent; frees its stream slot exactly once,
    at the end, on error, or when dropped unread (a client that left before the body)."""

    def __init__(self, source: AsyncIterator[bytes], limiter: StreamLimiter) -> None:
        self._source = source
        self._limiter = limiter
        self._pending: asyncio.Future | None = None
        self._open = True

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._limiter.leave()
            if self._pending is not None and not self._pending.done():
                self._pending.cancel()

    def __aiter__(self) -> PrefetchedStream:
        return self

    async def __anext__(self) -> bytes:
        if not self._open:
            raise StopAsyncIteration
        try:
            if self._pending is None:
                self._pending = asyncio.ensure_future(anext(self._source, None))
            chunk = await self._pending
            if chunk is None:
                raise StopAsyncIteration
            self._pending = asyncio.ensure_future(anext(self._source, None))
            return chunk
        except BaseException:
            self._close()
            raise

    def __del__(self) -> None:
        self._close()


def _limiter(request: Request) -> StreamLimiter:
    ctx = ctx_of(request)
    limiter = ctx.extras.get("stream_limiter")
    if limiter is None:
        limiter = ctx.extras["stream_limiter"] = StreamLimiter(ctx.settings.max_concurrent_streams)
    return limiter


async def _rewrite_playlist(request: Request, text: str, key: str, expires_at: int) -> str:
    """Point every segment URI of a variant playlist at a presigned OSS URL."""
    ctx = ctx_of(request)
    base = key.rsplit("/", 1)[0] + "/"

    def sign(uri: str) -> str:
        if "://" in uri or uri.endswith(".m3u8"):
            return uri  # variant playlists stay relative: they come back here, still signed
        return ctx.store.presign_get(base + uri, expires_at) or uri

    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            line = _URI_ATTR.sub(lambda m: f'URI="{sign(m.group(1))}"', line)
        elif line.strip():
            line = sign(line.strip())
        lines.append(line)
    return "\n".join(lines) + "\n"


@route("/play/{expires_at:int}/{signature:str}/{key:path}", http_method=["GET", "HEAD"])
async def play_file(request: Request, expires_at: int, signature: str, key: str) -> Response:
    """A stored object under a signed, expiring URL."""
    ctx = ctx_of(request)
    key = unquote(key.lstrip("/"))
    from vasset.playback.api import playback

    secret = await playback(request).secret()
    if ".." in key.split("/") or not urls.verify(secret, key, expires_at, signature, time.time()):
        raise errors.InvalidUrlSignature()
    info = await ctx.store.head(key)
    if info is None:
        raise errors.ObjectNotFound()
    content_type = guess_content_type(key)
    base_headers = {
        "Cache-Control": f"private, max-age={max(0, expires_at - int(time.time()))}",
    }
    if key.endswith(".m3u8") and ctx.store.presigns:
        data = b"".join([chunk async for chunk in ctx.store.read(key)])
        body = await _rewrite_playlist(request, data.decode(), key, expires_at)
        return Response(content=body, media_type=content_type, headers=base_headers)
    etag = f'"{info.etag}"'
    headers = {**base_headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if request.headers.get("if-none-match") in (etag, "*"):
        return Response(content=b"", status_code=304, headers=headers)
    try:
        byte_range = parse_range(request.headers.get("range"), info.size)
    except errors.RangeNotSatisfiable as exc:
        exc.extra_headers["Content-Range"] = f"bytes */{info.size}"
        raise
    start, end = byte_range or (0, info.size - 1)
    status = 206 if byte_range else 200
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD" or info.size == 0:
        return Response(content=b"", status_code=status, headers=headers, media_type=content_type)
    limiter = _limiter(request)
    limiter.enter()
    source = ctx.store.read(key, start, end, chunk_size=4 << 20)
    return Stream(
        PrefetchedStream(source, limiter),
        status_code=status,
        headers=headers,
        media_type=content_type,
    )
