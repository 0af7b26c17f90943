"""GET /video/storyboard: signed URLs of a video's storyboard (sprite sheets and WebVTT track).

The sheets and the VTT live together under ``media/{vid}/{attempt}/storyboard/``, and a /play
signature covers that whole folder (playback/urls.py), so the VTT's cue URIs stay relative
(``sheet0.jpg#xywh=0,0,160,90``): a player resolves them against the VTT's own signed URL. The
VTT is always served by the API; on a store that presigns (OSS), /play rewrites each cue to a
presigned URL of its sheet with the same expiry (``presigned_vtt``), as it does for HLS segments.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated

import msgspec
from litestar import get
from litestar.di import NamedDependency

from vasset import errors
from vasset.db import transaction
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import Answer, shaped
from vasset.playback import policy
from vasset.playback.schemas import Expires
from vasset.storage.base import BlobStore
from vasset.transcode.storyboard import MEDIA_INFO_KEY as STORYBOARD_KEY
from vasset.videos import repository as videos
from vasset.videos.schemas import Vid
from vasset.videos.state import Ladder, ladder_of

if TYPE_CHECKING:
    from vasset.context import Context

_VTT_KEY = re.compile(r"^media/\d+/[0-9]+-[a-z0-9_]+/storyboard/[a-z0-9_]+\.vtt\Z")
_CUE_URI = re.compile(r"^(sheet\d+\.jpg)(#xywh=\d+,\d+,\d+,\d+)$")


class StoryboardParams(msgspec.Struct):
    """Query of GET /video/storyboard."""

    vid: Vid
    expires: Expires = None


class StoryboardSheet(Answer):
    """One sprite sheet: a JPEG of tiles, left to right, then top to bottom."""

    url: str
    width: int
    height: int
    #: null: a public video's URL, which does not expire.
    expires_at: int | None


class Storyboard(Answer):
    """Answer of GET /video/storyboard."""

    vid: int
    vtt_url: Annotated[str, msgspec.Meta(description="WebVTT; cues are sheetN.jpg#xywh=x,y,w,h")]
    expires_at: Annotated[int | None, msgspec.Meta(description="null: a public video's URLs")]
    interval: Annotated[int, msgspec.Meta(description="seconds between two tiles")]
    tile_width: int
    tile_height: int
    tiles: int
    sheets: list[StoryboardSheet]


async def storyboard(ctx: Context, app_id: int, vid: int, expires: int | None) -> dict:
    """The storyboard answer: signed VTT and sheet URLs of the video's published storyboard."""
    expires_at = ctx.playback.expiry(expires)
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, vid, app_id)
        children = await videos.children(conn, vid) if video else []
    if video is None or video.parent_id is not None:
        raise errors.VideoNotFound()
    details = json.loads(video.media_info or "{}")
    board = details.get(STORYBOARD_KEY)
    if board is None:
        if ladder_of(details, bool(children)) is Ladder.COMPLETE:
            raise errors.StoryboardNotFound()
        raise errors.VideoNotPlayable(
            "the storyboard comes with the complete ladder: not transcoded yet",
            status=video.status,
        )
    # Through the API: it is the VTT's URL that the relative cue URIs resolve against.
    vtt_url, until = await policy.object_url(
        ctx.playback, video, board["vtt"], expires_at, via_api=True
    )
    sheets = []
    for sheet in board["sheets"]:
        url, _ = await policy.object_url(ctx.playback, video, sheet["key"], expires_at)
        sheets.append(
            {"url": url, "width": sheet["width"], "height": sheet["height"], "expires_at": until}
        )
    return {
        "vid": vid,
        "vtt_url": vtt_url,
        "expires_at": until,
        "interval": board["interval"],
        "tile_width": board["tile_width"],
        "tile_height": board["tile_height"],
        "tiles": board["tiles"],
        "sheets": sheets,
    }


def is_storyboard_vtt(key: str) -> bool:
    """Whether key is a storyboard's WebVTT track (served rewritten on presigning stores)."""
    return bool(_VTT_KEY.match(key))


async def presigned_vtt(store: BlobStore, key: str, expires_at: int) -> str:
    """The VTT with each cue's sheet URI presigned until expires_at (fragment kept)."""
    data = b"".join([chunk async for chunk in store.read(key)])
    base = key.rsplit("/", 1)[0] + "/"
    lines = []
    for line in data.decode().splitlines():
        match = _CUE_URI.match(line)
        if match:
            url = store.presign_get(base + match.group(1), expires_at)
            line = (url or match.group(1)) + match.group(2)
        lines.append(line)
    return "\n".join(lines) + "\n"


@get(
    "/video/storyboard",
    dependencies={"q": query(StoryboardParams, signed=True)},
    **doc(
        tag="playback",
        query=StoryboardParams,
        codes=(errors.VideoNotFound, errors.VideoNotPlayable, errors.StoryboardNotFound),
        example={
            "vid": 42,
            "vtt_url": "http://127.0.0.1:8000/play/1700003600/5d2e.../media/42/7-ab12/"
            "storyboard/storyboard.vtt",
            "expires_at": 1700003600,
            "interval": 2,
            "tile_width": 160,
            "tile_height": 90,
            "tiles": 6,
            "sheets": [
                {
                    "url": "http://127.0.0.1:8000/play/1700003600/5d2e.../media/42/7-ab12/"
                    "storyboard/sheet0.jpg",
                    "width": 960,
                    "height": 90,
                    "expires_at": 1700003600,
                }
            ],
        },
    ),
)
async def video_storyboard(
    ctx: Ctx, caller: Caller, q: NamedDependency[StoryboardParams]
) -> Storyboard:
    """Signed, expiring URLs of the video's storyboard: a WebVTT track and its sprite sheets."""
    return shaped(await storyboard(ctx, caller.id, q.vid, q.expires), Storyboard)


ROUTES = [video_storyboard]
