"""The one place that builds object keys. Keys never contain user text.

Layout (relative to the store's root or OSS prefix):

    sources/{app_id}/{video_id}/{nonce}/source          uploaded or imported original
    media/{video_id}/{lease_token}-{nonce}/             one transcode attempt's outputs:
        {definition}.mp4                                  MP4 renditions
        hls/master.m3u8                                   HLS master playlist
        hls/{definition}/index.m3u8, seg_*.m4s, init.mp4  HLS variants and segments
        snapshots/{index}.jpg                             snapshots
        thumbs/{time_ms}-{width}.{jpg|webp}               thumbnails made on demand
    direct/{app_id}/{nonce}/...                         single-shot browser uploads (PostObject)
    assets/{app_id}/{nonce}.png                         an app's image assets (watermarks)
    captions/{video_id}/{nonce}.vtt                     a video's captions (one per language; kept
                                                        across transcodes, so outside media/)

A transcode attempt writes only under its own media/ prefix, scoped by its fencing token;
its outputs become visible when the database rows pointing at them are committed while the
token still holds, so a stale worker can never overwrite or publish anything.
"""

from __future__ import annotations

import re
import secrets

_SAFE = re.compile(r"^[a-z0-9_]{1,32}\Z")


def new_nonce() -> str:
    """A random path component that makes keys unguessable and never reused."""
    return secrets.token_hex(8)


def _check(component: str) -> str:
    if not _SAFE.match(component):
        raise ValueError(f"unsafe key component: {component!r}")
    return component


def source_key(app_id: int, video_id: int, nonce: str) -> str:
    """Key of a video's original bytes."""
    return f"sources/{int(app_id)}/{int(video_id)}/{_check(nonce)}/source"


def asset_key(app_id: int, nonce: str) -> str:
    """Key of one image asset of an app (a fresh nonce per upload)."""
    return f"assets/{int(app_id)}/{_check(nonce)}.png"


def direct_prefix(app_id: int) -> str:
    """Prefix a PostObject policy allows for an app."""
    return f"direct/{int(app_id)}/"


def output_prefix(video_id: int, lease_token: int, nonce: str) -> str:
    """Prefix of one transcode attempt's outputs (token-scoped, never reused)."""
    return f"media/{int(video_id)}/{int(lease_token)}-{_check(nonce)}/"


def output_prefix_of(key: str) -> str | None:
    """The media/{vid}/{attempt}/ prefix a rendition or snapshot key lives under."""
    parts = key.split("/")
    return "/".join(parts[:3]) + "/" if len(parts) > 3 and parts[0] == "media" else None


def thumbnail_key(rendition_key: str, time_ms: int, width: int, fmt: str) -> str:
    """Where a thumbnail of the attempt that made rendition_key lives (a new attempt: new keys)."""
    prefix = output_prefix_of(rendition_key)
    if prefix is None:
        raise ValueError(f"not an output key: {rendition_key!r}")
    return f"{prefix}thumbs/{int(time_ms)}-{int(width)}.{_check(fmt)}"


def caption_key(video_id: int, nonce: str) -> str:
    """Key of one caption file of a video (a fresh nonce per upload: a replace never overwrites)."""
    return f"captions/{int(video_id)}/{_check(nonce)}.vtt"


def caption_prefix(video_id: int) -> str:
    """Prefix of every caption file of a video."""
    return f"captions/{int(video_id)}/"


#: Top-level prefixes of the layout above: vasset writes nowhere else in a store.
OWN_PREFIXES = ("sources/", "media/", "direct/", "assets/", "captions/")
#: Prefixes whose second component is a video id (the others name an app).
_VIDEO_PREFIXES = ("media/", "captions/")

_OWNER_ID = re.compile(r"^[1-9][0-9]{0,17}\Z")


def layout_owner(key: str) -> tuple[str, int] | None:
    """("app", id) or ("video", id) that a key of the layout belongs to; None outside the layout.

    Prefixes compare case-insensitively and an owner component vasset would never write
    (``sources/007/``, ``media/x/``) gives id 0, which nothing has: a lookalike of the layout
    is treated as part of it, never as a key outside it.
    """
    top, _, rest = key.partition("/")
    prefix = top.lower() + "/"
    if prefix not in OWN_PREFIXES:
        return None
    owner = rest.split("/", 1)[0]
    ident = int(owner) if _OWNER_ID.match(owner) else 0
    return ("video" if prefix in _VIDEO_PREFIXES else "app"), ident


def tail_key(source: str, claim: int) -> str:
    """Where a protocol upload keeps bytes too few for a part (each claim its own object)."""
    return f"{source}.tail-{int(claim)}"


def tail_prefix(source: str) -> str:
    """The prefix of every tail object of the upload into source (removed when it ends)."""
    return f"{source}.tail-"
