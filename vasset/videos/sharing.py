"""Videos that share another video's verified source bytes (instant uploads, template outputs)."""

from __future__ import annotations

from typing import Any

from vasset.videos.repository import VideoRow
from vasset.videos.state import VideoStatus


def shared_source_columns(source: VideoRow) -> dict[str, Any]:
    """The columns of a new, uploaded video whose source is source's stored, verified file.

    unique_id points at the first owner of the bytes, so a delete never removes bytes that
    another video still uses.
    """
    return {
        "unique_id": source.unique_id or source.id,
        "file_size": source.file_size,
        "video_width": source.video_width,
        "video_height": source.video_height,
        "duration": source.duration,
        "hash": source.hash,
        "storage_uri": source.storage_uri,
        "status": VideoStatus.UPLOADED.value,
    }
