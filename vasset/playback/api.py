"""HTTP routes of /video/playurl and /video/snapshot, plus the signed /play file route."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from vasset import errors
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc
from vasset.http.schemas import shaped
from vasset.playback.files import play_file
from vasset.playback.policy_api import ROUTES as POLICY_ROUTES
from vasset.playback.schemas import Playback, PlayParams, SnapshotParams, Snapshots
from vasset.playback.thumbnail_api import ROUTES as THUMBNAIL_ROUTES


@get(
    "/video/playurl",
    dependencies={"q": query(PlayParams, signed=True)},
    **doc(
        tag="playback",
        query=PlayParams,
        codes=(errors.VideoNotFound, errors.VideoNotPlayable),
        example={
            "vid": 42,
            "status": "playable",
            "duration": 12000,
            "cover_url": "http://127.0.0.1:8000/play/1700003600/3f1c.../media/42/cover.jpg",
            "play_urls": [
                {
                    "definition": "360p",
                    "format": "mp4",
                    "url": "http://127.0.0.1:8000/play/1700003600/9a0b.../media/42/360p.mp4",
                    "width": 640,
                    "height": 360,
                    "bitrate": 800000,
                    "size": 1200000,
                    "expires_at": 1700003600,
                }
            ],
        },
    ),
)
async def video_playurl(ctx: Ctx, caller: Caller, q: NamedDependency[PlayParams]) -> Playback:
    """Signed, expiring play URLs per definition, and the HLS master."""
    answer = await ctx.playback.playurl(caller.id, q.vid, q.definition, q.format, q.expires)
    return shaped(answer, Playback)


@get(
    "/video/snapshot",
    dependencies={"q": query(SnapshotParams, signed=True)},
    **doc(tag="playback", query=SnapshotParams, codes=(errors.VideoNotFound,)),
)
async def video_snapshot(ctx: Ctx, caller: Caller, q: NamedDependency[SnapshotParams]) -> Snapshots:
    """Signed snapshot URLs and the cover index."""
    return shaped(await ctx.playback.snapshots(caller.id, q.vid, q.expires), Snapshots)


ROUTES = [video_playurl, video_snapshot, play_file, *THUMBNAIL_ROUTES, *POLICY_ROUTES]
