"""Captions in HLS: the SUBTITLES group of a master playlist, served when the master is.

Captions change independently of transcodes (added, replaced or deleted at any time, kept
across retranscodes), so the stored master never names them: /play adds the group to the
master it serves, from the video's caption rows at that moment. No stored playlist is ever
rewritten, so nothing races a transcode's fenced publish, and progressive (partial) masters,
retried attempts' sets and retranscoded ladders all get the same group.

A language's subtitle playlist lives at ``subs/{lang}.m3u8`` beside the master (inside the HLS
prefix the master's URL signature covers) and is made on request too: one WebVTT segment, the
whole video long, whose URI is the caption file's signed URL with the master URL's expiry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vasset import errors
from vasset.captions import repository as repo
from vasset.db import transaction

if TYPE_CHECKING:
    from vasset.context import Context

GROUP = "subs"
_MASTER = re.compile(r"^media/(\d+)/[^/]+/hls/master\.m3u8\Z")
_SUBS = re.compile(r"^media/(\d+)/[^/]+/hls/subs/([A-Za-z0-9-]{2,35})\.m3u8\Z")


def subtitle_uri(lang: str) -> str:
    """Where a master names a language's subtitle playlist (relative to the master)."""
    return f"{GROUP}/{lang}.m3u8"


def with_subtitles(master: str, captions: list[repo.CaptionRow]) -> str:
    """The master text with a SUBTITLES group of captions and every variant pointing at it."""
    if not captions:
        return master
    media = [
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{GROUP}",LANGUAGE="{c.lang}",NAME="{c.label}",'
        f'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="{subtitle_uri(c.lang)}"'
        for c in captions
    ]
    out: list[str] = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if media:
                out += media  # the group comes before the first variant that names it
                media = []
            if "SUBTITLES=" not in line:
                line += f',SUBTITLES="{GROUP}"'
        out.append(line)
    return "\n".join(out) + "\n"


def subtitle_playlist(vtt_url: str, duration_ms: int | None) -> str:
    """A VOD media playlist of one WebVTT segment covering the whole video."""
    seconds = max((duration_ms or 0) / 1000, 0.001)
    return "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(seconds))}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXTINF:{seconds:.3f},",
            vtt_url,
            "#EXT-X-ENDLIST",
            "",
        ]
    )


async def served_playlist(
    ctx: Context, key: str, url_of: Callable[[str], Awaitable[str]]
) -> str | None:
    """The text /play or /pub answers for a master with captions or a subtitle playlist; else None.

    url_of gives the URL a player fetches a caption file by (signed for /play, stable for /pub).

    None means "serve the stored object as it is" (any other key, or a video without captions).
    """
    master = _MASTER.match(key)
    subs = None if master else _SUBS.match(key)
    if master is None and subs is None:
        return None
    vid = int((master or subs).group(1))  # type: ignore[union-attr]
    async with transaction(ctx.engine) as conn:
        found = await repo.hls_captions(conn, vid)
    if subs is not None:
        lang = subs.group(2)
        row = next((c for c in found.captions if c.lang == lang), None) if found else None
        if found is None or row is None:
            raise errors.ObjectNotFound()
        url = await url_of(row.storage_uri)
        return subtitle_playlist(url, found.duration)
    if found is None or not found.captions:
        return None
    data = b"".join([chunk async for chunk in ctx.store.read(key)])
    return with_subtitles(data.decode(), found.captions)
