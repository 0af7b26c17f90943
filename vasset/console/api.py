"""The console: a page at /console and the session-authenticated JSON routes behind it.

The operator sets VASSET_CONSOLE_KEY (the login secret) and VASSET_CONSOLE_APP_KEY (the app the
console acts for). The browser never holds an app secret: it logs in with the console key, gets
an HttpOnly session cookie, and these routes make the app's calls server-side; uploads then go
straight to /video/upload/* with the upload token that init returned.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from vasset import errors, redis_keys
from vasset.console import session
from vasset.console.guard import authorized, json_body, logged_in
from vasset.console.media import ROUTES as media_routes
from vasset.console.videos import ROUTES as video_routes
from vasset.events import repository as event_rows
from vasset.events.stream_api import EventStream, EventStreamResponse, resume_point
from vasset.http.auth import query_string
from vasset.http.deps import Ctx
from vasset.http.params import Count, Priority, parse_params
from vasset.http.responses import json_response
from vasset.redis_client import redis_guard

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_DIR = STATIC_DIR / "console"

#: The only files the console serves: name -> (path, content type). No directory listing.
ASSETS: dict[str, tuple[Path, str]] = {
    "app.js": (PAGE_DIR / "app.js", "text/javascript; charset=utf-8"),
    "style.css": (PAGE_DIR / "style.css", "text/css; charset=utf-8"),
    # The browser SDK (clients/js/vasset.js links to this file).
    "list.js": (PAGE_DIR / "list.js", "text/javascript; charset=utf-8"),
    "media.js": (PAGE_DIR / "media.js", "text/javascript; charset=utf-8"),
    "vasset.js": (PAGE_DIR / "vasset.js", "text/javascript; charset=utf-8"),
    "vasset-events.js": (PAGE_DIR / "vasset-events.js", "text/javascript; charset=utf-8"),
    # hls.js, a pinned file (static/vendor/README.md); the page falls back to MP4 without it.
    "hls.min.js": (STATIC_DIR / "vendor" / "hls.min.js", "text/javascript; charset=utf-8"),
}

#: Default part size of console uploads (the server's minimum wins when larger).
DEFAULT_PART_SIZE = 4 * 1024 * 1024
#: Failed logins per client address within LOGIN_WINDOW before logins are refused.
LOGIN_FAILURES = 10
LOGIN_WINDOW = 300
#: KEYS[1] failures of one address; ARGV limit, window, key matched (1/0). Returns
#: {1, seconds left} when locked out (nothing counted), else {0, failures}; a match resets.
_LOGIN_SCRIPT = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {1, ttl}
end
if ARGV[3] == '1' then
  if failures > 0 then redis.call('DEL', KEYS[1]) end
  return {0, 0}
end
failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {0, failures}
"""

_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Play URLs may be presigned OSS or CDN URLs on other hosts.
        "img-src 'self' data: blob: https: http:",
        "media-src 'self' blob: https: http:",
        "connect-src 'self' https: http:",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

DISABLED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vasset console disabled</title></head>
<body><h1>The vasset console is disabled</h1>
<p>Set <code>VASSET_CONSOLE_KEY</code> (the login secret) and <code>VASSET_CONSOLE_APP_KEY</code>
(the app the console acts for) and restart the API to enable it.</p></body></html>
"""

_asset_cache: dict[Path, tuple[int, int, bytes, str]] = {}


def _read_asset(path: Path) -> tuple[bytes, str] | None:
    """File bytes and an ETag, cached while the file's mtime and size stay the same."""
    try:
        st = path.stat()
    except OSError:
        return None
    hit = _asset_cache.get(path)
    if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2], hit[3]
    data = path.read_bytes()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    _asset_cache[path] = (st.st_mtime_ns, st.st_size, data, etag)
    return data, etag


def _client_address(request: Request) -> str:
    client = request.scope.get("client")
    return client[0] if client else "unknown"


# Page and assets


@get("/console", include_in_schema=False)
async def console_page(ctx: Ctx) -> Response:
    """The console page, or a 404 page that says how to enable it."""
    if not ctx.console.enabled:
        return Response(
            DISABLED_PAGE,
            status_code=404,
            media_type="text/html; charset=utf-8",
            headers=PAGE_HEADERS,
        )
    found = _read_asset(PAGE_DIR / "index.html")
    if found is None:
        raise errors.NotFound("the console page is not installed")
    return Response(found[0], media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@get("/console/static/{name:str}", include_in_schema=False)
async def console_asset(request: Request, ctx: Ctx, name: FromPath[str]) -> Response:
    """One of the page's scripts or styles (a fixed list)."""
    ctx.console.require_enabled()
    entry = ASSETS.get(name)
    found = _read_asset(entry[0]) if entry else None
    if entry is None or found is None:
        raise errors.NotFound(f"no console asset {name!r}")
    data, etag = found
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(data, media_type=entry[1], headers=headers)


# Login


class LoginBody(msgspec.Struct):
    """Body of POST /console/login."""

    key: str


@post("/console/login", status_code=200)
async def console_login(request: Request, ctx: Ctx) -> Response:
    """Exchange the console key for an HttpOnly, SameSite=Strict session cookie."""
    ctx.console.require_enabled()
    body = await json_body(request, LoginBody)
    counter = redis_keys.console_login_failures(ctx.settings.redis_prefix, _client_address(request))
    matches = session.key_matches(body.key, ctx.settings.console_key)
    # Check and count in one script: concurrent guesses cannot all pass the check first.
    async with redis_guard():
        locked, retry_after = await ctx.redis.eval(
            _LOGIN_SCRIPT, 1, counter, LOGIN_FAILURES, LOGIN_WINDOW, int(matches)
        )
    if locked:
        raise errors.Throttled(
            "too many failed logins; wait a few minutes", retry_after=max(1, int(retry_after))
        )
    if not matches:
        raise errors.InvalidConsoleKey("wrong console key")
    value = await ctx.console.issue()
    app = await ctx.auth.app_by_key(ctx.settings.console_app_key)
    response = json_response({"logged_in": True, "app": app.name if app else None})
    response.set_cookie(
        session.COOKIE,
        value,
        max_age=session.TTL,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or ctx.settings.public_url.startswith("https:"),
    )
    return response


@post("/console/logout", status_code=200)
async def console_logout(ctx: Ctx) -> Response:
    """Drop the session cookie."""
    ctx.console.require_enabled()
    response = json_response({"logged_in": False})
    response.delete_cookie(session.COOKIE, path="/console")
    return response


@get("/console/api/session")
async def console_session(request: Request, ctx: Ctx) -> Response:
    """Whether this browser is logged in, and for which app."""
    ctx.console.require_enabled()
    if not await logged_in(request, ctx):
        return json_response({"enabled": True, "logged_in": False})
    app = await ctx.console.app()
    return json_response(
        {
            "enabled": True,
            "logged_in": True,
            "app": app.name,
            "limits": ctx.uploads.limits(),
            "default_part_size": DEFAULT_PART_SIZE,
        }
    )


# Uploads and videos


class UploadBody(msgspec.Struct):
    """Body of POST /console/api/uploads."""

    name: str
    size: Count
    part_size: Count | None = None
    hash: str | None = None
    priority: Priority = 0


@post("/console/api/uploads", status_code=200)
async def console_create_upload(request: Request, ctx: Ctx) -> Response:
    """Server-side init for the console's app (auto-transcode); answers with an upload token."""
    app = await authorized(request, ctx)
    body = await json_body(request, UploadBody)
    psize = body.part_size or max(DEFAULT_PART_SIZE, ctx.uploads.smallest_part_size(body.size))
    fn = base64.b64encode(body.name.encode()).decode()
    answer = await ctx.uploads.init(app, fn, body.size, psize, body.hash, True, body.priority)
    return json_response(answer)


@get("/console/api/videos/{vid:int}")
async def console_video(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """Status, progress and media info of one video."""
    app = await authorized(request, ctx)
    videos = ctx.videos
    status = await videos.status(app.id, vid)
    return json_response({**status, "media": await videos.mediainfo(app.id, vid)})


@get("/console/api/videos/{vid:int}/play")
async def console_play(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """The playurl answer: signed, expiring URLs (MP4 per definition and the HLS master)."""
    app = await authorized(request, ctx)
    return json_response(await ctx.playback.playurl(app.id, vid, None, None, None))


@get("/console/api/videos/{vid:int}/snapshots")
async def console_snapshots(request: Request, ctx: Ctx, vid: FromPath[int]) -> Response:
    """The snapshot answer: signed snapshot URLs and the cover index."""
    app = await authorized(request, ctx)
    return json_response(await ctx.playback.snapshots(app.id, vid, None))


class EventsQuery(msgspec.Struct):
    """Query of GET /console/api/events."""

    vid: int | None = None
    since: int | None = None


@get("/console/api/events", include_in_schema=False)
async def console_events(request: Request, ctx: Ctx) -> Response:
    """The console app's live events (one video's with vid), as GET /video/events streams them."""
    app = await authorized(request, ctx)
    p = parse_params(query_string(request), EventsQuery)
    after = resume_point(request.headers.get("last-event-id"), p.since)
    if p.vid is not None:
        await ctx.videos.get(app.id, p.vid)  # VideoNotFound unless it is the console app's
    if after is None:
        async with ctx.engine.connect() as conn:
            after = await event_rows.last_event_id(conn, app.id)
    return EventStreamResponse(EventStream(ctx, app.id, p.vid, after, None))


ROUTES = [
    console_page,
    console_asset,
    console_login,
    console_logout,
    console_session,
    console_create_upload,
    *video_routes,
    *media_routes,
    console_video,
    console_play,
    console_snapshots,
    console_events,
]
