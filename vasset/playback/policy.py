"""Playback policy per video: signed (expiring signed URLs, the default) or public.

A public video's URLs are ``{public_url}/pub/{public_token}/{key}``: no expiry, no signature,
the same on every call, served with a long ``Cache-Control: public`` so a CDN in front of the
API may cache them. The token is drawn when the video goes public and cleared when it goes back
to signed; going public again draws a new one, so a URL handed out before stops working (the
/pub route checks the token against the video row on every request).
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import quote

import msgspec
import structlog

from vasset import errors
from vasset.db import transaction
from vasset.storage import keys
from vasset.videos import repository as videos

if TYPE_CHECKING:
    from vasset.context import Context
    from vasset.playback.service import PlaybackService
    from vasset.videos.repository import VideoRow

log = structlog.get_logger(__name__)

PlaybackPolicy = Literal["signed", "public"]
PolicyParam = Annotated[
    PlaybackPolicy,
    msgspec.Meta(description="signed: expiring signed URLs (default); public: stable URLs"),
]
#: Seconds a CDN or browser may keep a public object: outputs never change under their key.
PUBLIC_MAX_AGE = 365 * 24 * 3600
PUBLIC_CACHE = f"public, max-age={PUBLIC_MAX_AGE}, immutable"
#: Playlists grow while a video is published progressively: caches revalidate them (ETag).
PUBLIC_PLAYLIST_CACHE = "public, no-cache"


def new_token() -> str:
    """A fresh public path token (128 random bits)."""
    return secrets.token_hex(16)


def policy_values(policy: str | None) -> dict:
    """Columns of a new video row for the asked policy (nothing for signed, the default)."""
    if policy == "public":
        return {"playback_policy": "public", "public_token": new_token()}
    return {}


def is_public(video: VideoRow) -> bool:
    """Whether the video's objects are served under stable public URLs."""
    return video.playback_policy == "public" and bool(video.public_token)


def public_path(token: str, key: str) -> str:
    """The path of a public URL for key."""
    return f"/pub/{token}/{quote(key, safe='/-_.~')}"


async def object_url(
    playback: PlaybackService, video: VideoRow, key: str, expires_at: int, via_api: bool = False
) -> tuple[str, int | None]:
    """(URL, expires_at) of one of video's objects: stable and None when public, else signed."""
    if is_public(video):
        assert video.public_token is not None
        base = playback.ctx.settings.public_url.rstrip("/")
        return base + public_path(video.public_token, key), None
    return await playback.sign(key, expires_at, via_api=via_api), expires_at


async def set_policy(ctx: Context, app_id: int, vid: int, policy: str) -> dict:
    """Switch a video's policy; a move to signed revokes its public URLs at once."""
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, vid, app_id, for_update=True)
        if video is None:
            raise errors.VideoNotFound()
        if policy != video.playback_policy or (policy == "public") != bool(video.public_token):
            token = new_token() if policy == "public" else None
            await videos.update_video(conn, vid, playback_policy=policy, public_token=token)
    ctx.playback.forget(vid)
    log.info("playback_policy_set", vid=vid, policy=policy)
    return {"vid": vid, "playback_policy": policy}


async def public_video(ctx: Context, token: str, key: str) -> VideoRow:
    """The public video whose object key is, if token is its current public token; else 404."""
    owner = keys.layout_owner(key)
    if owner is None or owner[0] != "video" or not key.startswith(("media/", "captions/")):
        raise errors.ObjectNotFound()
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, owner[1])
    if (
        video is None
        or video.parent_id is not None
        or not is_public(video)
        or not hmac.compare_digest(str(video.public_token).encode(), token.encode())
    ):
        raise errors.ObjectNotFound()
    return video
