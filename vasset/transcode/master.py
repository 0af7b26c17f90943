"""The HLS master playlist of a ladder (pure: text from the rendition outputs)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vasset.transcode.audio import AudioOutput, master_entry

if TYPE_CHECKING:
    from vasset.transcode.commands import RenditionOutput


def master_playlist(
    renditions: Sequence[RenditionOutput],
    *,
    base: str | None = None,
    audio: AudioOutput | None = None,
) -> str:
    """HLS master playlist text; variant URIs are relative to ``base`` (default: hls root)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in sorted(renditions, key=lambda r: (r.bandwidth, r.name)):
        if r.hls_playlist is None:
            continue
        root = base if base is not None else os.path.dirname(os.path.dirname(r.hls_playlist))
        uri = os.path.relpath(r.hls_playlist, root).replace(os.sep, "/")
        attrs = [
            f"BANDWIDTH={r.bandwidth}",
            f"AVERAGE-BANDWIDTH={r.average_bandwidth}",
            f"RESOLUTION={r.width}x{r.height}",
            f'CODECS="{r.codecs}"',
        ]
        if r.frame_rate:
            attrs.append(f"FRAME-RATE={r.frame_rate:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), uri]
    if len(lines) == 3:
        raise ValueError("no rendition has an HLS playlist")
    # Last: players start on the first variant listed, and it must have video.
    lines += master_entry(audio) if audio is not None else []
    return "\n".join(lines) + "\n"
