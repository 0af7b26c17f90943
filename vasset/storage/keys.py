"""The one place that builds object keys. Keys never contain user text.

Layout (relative to the store's root or OSS prefix):

    sources/{app_id}/{video_id}/{nonce}/source          uploaded or imported original
    work/{video_id}/{lease_token}/...                   a job's outputs before publishing
    renditions/{video_id}/{nonce}/{definition}.mp4      published MP4 renditions
    hls/{video_id}/{nonce}/master.m3u8                  published HLS master playlist
    hls/{video_id}/{nonce}/{definition}/index.m3u8      HLS variant playlists and segments
    snapshots/{video_id}/{nonce}/{index}.jpg            snapshots
    direct/{app_id}/{nonce}/source                      single-shot browser uploads (PostObject)
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


def work_prefix(video_id: int, lease_token: int) -> str:
    """Prefix a job writes under before it publishes (scoped by its fencing token)."""
    return f"work/{int(video_id)}/{int(lease_token)}/"


def rendition_key(video_id: int, nonce: str, definition: str) -> str:
    """Key of one published MP4 rendition."""
    return f"renditions/{int(video_id)}/{_check(nonce)}/{_check(definition)}.mp4"


def hls_prefix(video_id: int, nonce: str) -> str:
    """Prefix of a published HLS ladder (master.m3u8 plus one folder per definition)."""
    return f"hls/{int(video_id)}/{_check(nonce)}/"


def snapshot_key(video_id: int, nonce: str, index: int) -> str:
    """Key of one published snapshot."""
    return f"snapshots/{int(video_id)}/{_check(nonce)}/{int(index)}.jpg"


def direct_key(app_id: int, nonce: str) -> str:
    """Key a single-shot browser upload (PostObject) lands on."""
    return f"direct/{int(app_id)}/{_check(nonce)}/source"


def direct_prefix(app_id: int) -> str:
    """Prefix a PostObject policy allows for an app."""
    return f"direct/{int(app_id)}/"
