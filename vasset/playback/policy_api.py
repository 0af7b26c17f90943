"""POST /video/policy (a video's playback policy) and /pub, the route of public URLs."""

from __future__ import annotations

from urllib.parse import unquote

import msgspec
from litestar import Request, Response, post, route
from litestar.di import NamedDependency
from litestar.params import FromPath

from vasset import errors
from vasset.captions.hls import served_playlist
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import PUBLIC, doc
from vasset.http.schemas import Answer, shaped
from vasset.playback import policy
from vasset.playback.files import PLAY_TYPES, servable_key, serve_object
from vasset.storage.local import guess_content_type
from vasset.videos.schemas import Vid


class PolicyParams(msgspec.Struct):
    """Query of POST /video/policy."""

    vid: Vid
    playback_policy: policy.PolicyParam


class PolicyAnswer(Answer):
    """Answer of POST /video/policy."""

    vid: int
    playback_policy: policy.PlaybackPolicy


@post(
    "/video/policy",
    status_code=200,
    dependencies={"q": query(PolicyParams, signed=True)},
    **doc(
        tag="playback",
        query=PolicyParams,
        codes=(errors.VideoNotFound,),
        example={"vid": 42, "playback_policy": "public"},
    ),
)
async def video_policy(ctx: Ctx, caller: Caller, q: NamedDependency[PolicyParams]) -> PolicyAnswer:
    """Set a video's playback policy: public URLs are stable; signed ones expire."""
    return shaped(await policy.set_policy(ctx, caller.id, q.vid, q.playback_policy), PolicyAnswer)


@route(
    "/pub/{token:str}/{key:path}",
    http_method=["GET", "HEAD"],
    **doc(
        tag="playback",
        auth=PUBLIC,
        codes=(
            errors.InvalidParameter,
            errors.ObjectNotFound,
            errors.InvalidRange,
            errors.Throttled,
        ),
        binary=PLAY_TYPES,
    ),
)
async def public_file(
    request: Request, ctx: Ctx, token: FromPath[str], key: FromPath[str]
) -> Response:
    """An object of a public video under its stable URL (no signature, CDN-cacheable).

    Supports HEAD, one byte range (206, 416) and If-None-Match (304); 404 once the video is
    signed again (or deleted).
    """
    key = unquote(key.lstrip("/"))
    if not servable_key(key):
        raise errors.ObjectNotFound()
    video = await policy.public_video(ctx, token, key)
    if key.endswith(".m3u8"):
        # The same captions as /play: a master's SUBTITLES group, subs/{lang}.m3u8 made here.

        async def stable_url(caption_key: str) -> str:
            return (await policy.object_url(ctx.playback, video, caption_key, 0))[0]

        made = await served_playlist(ctx, key, stable_url)
        if made is not None:
            headers = {"Cache-Control": policy.PUBLIC_PLAYLIST_CACHE}
            return Response(content=made, media_type=guess_content_type(key), headers=headers)
    return await serve_object(
        request, ctx, key, policy.PUBLIC_CACHE, policy.PUBLIC_PLAYLIST_CACHE, None
    )


ROUTES = [video_policy, public_file]
