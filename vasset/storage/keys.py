"""The one place that builds object keys. Keys never contain user text.

Layout (relative to the store's root or OSS prefix):

    sources/{app_id}/{video_id}/{nonce}/source          uploaded or imported original
    media/{video_id}/{lease_token}-{nonce}/             one transcode attempt's outputs:
        {definition}.mp4                                  MP4 renditions
        hls/master.m3u8                                   HLS master playlist
        hls/{definition}/index.m3u8, seg_*.m4s, init.mp4  HLS variants and segments
        snapshots/{index}.jpg                             snapshots
    direct/{app_id}/{nonce}/...                         single-shot browser uploads (PostObject)

A transcode attempt writes only under its own media/ prefix, scoped by its fencing token;
its outputs become visible when the database rows pointing at them are committed while the
token still holds, so a stale worker can never overwrite or publish anything.
"""

from __future__ import annotations

import re
import secrets

_SAFE = re.compile(r"^[a-z0-9_]{1,32}$")


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
