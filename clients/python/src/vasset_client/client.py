"""The signed HTTP client: every API call, typed answers (the transport retries)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from vasset_client import errors
from vasset_client.events import Event, iter_events
from vasset_client.media_calls import MediaCalls
from vasset_client.models import (
    STATUSES,
    Deleted,
    MediaInfo,
    PlayInfo,
    Snapshots,
    TranscodeResult,
    UploadTicket,
    VideoPage,
    VideoStatus,
    VideoSummary,
)
from vasset_client.transport import Body
from vasset_client.upload_calls import UploadCalls, b64name

__all__ = ["Body", "Client", "overlay_params"]


def overlay_params(
    watermark: int | None = None, text: str | None = None, **options: Any
) -> dict[str, Any]:
    """Overlay parameters for transcode(overlays=...): text is sent as Base64 of its UTF-8.

    options are the other parameters by their API names (wm_position, wm_opacity, wm_scale,
    wm_margin, text_position, text_size, text_colour, text_start, text_end; docs/API.md).
    """
    params: dict[str, Any] = {"watermark": watermark, **options}
    if text is not None:
        params["text"] = b64name(text)
    return {k: v for k, v in params.items() if v is not None}


class Client(UploadCalls, MediaCalls):
    """A signed client of one vasset app; thread-safe, use it as a context manager."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # video calls
    def status(self, vid: int) -> VideoStatus:
        """GET /video/status."""
        return VideoStatus.from_dict(self.request("GET", "/video/status", {"vid": vid}))

    def list_videos(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> VideoPage:
        """GET /video/list: one page of this app's videos, newest first."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        return VideoPage.from_dict(self.request("GET", "/video/list", params))

    def iter_videos(
        self, status: str | None = None, page_size: int = 100
    ) -> Iterator[VideoSummary]:
        """Every video of this app, newest first, following the cursors."""
        cursor = None
        while True:
            page = self.list_videos(status=status, limit=page_size, cursor=cursor)
            yield from page.videos
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def upload_ticket(
        self,
        max_size: int | None = None,
        auto: bool = False,
        priority: int | None = None,
        expires: int | None = None,
        uses: int | None = None,
        ttl: int | None = None,
        template: str | None = None,
        playback_policy: str | None = None,
    ) -> UploadTicket:
        """POST /video/upload/ticket: a bearer ticket for Uppy, tus-js-client, tuspy, iOS.

        ttl: seconds each video the ticket creates lives (then it is deleted).
        """
        params: dict[str, Any] = {"auto": int(auto)}
        for name, value in (
            ("max_size", max_size),
            ("priority", priority),
            ("expires", expires),
            ("uses", uses),
            ("ttl", ttl),
            ("template", template),
            ("playback_policy", playback_policy),
        ):
            if value is not None:
                params[name] = value
        return UploadTicket.from_dict(self.request("POST", "/video/upload/ticket", params))

    def mediainfo(self, vid: int) -> MediaInfo:
        """GET /video/mediainfo."""
        return MediaInfo.from_dict(self.request("GET", "/video/mediainfo", {"vid": vid}))

    def delete(self, vid: int) -> Deleted:
        """POST /video/delete: removes the video, its renditions and snapshots."""
        return Deleted.from_dict(self.request("POST", "/video/delete", {"vid": vid}))

    def transcode(
        self,
        vid: int,
        priority: int | None = None,
        definitions: Sequence[str] | str | None = None,
        codec: str | None = None,
        template: Sequence[str] | str | None = None,
        overlays: Mapping[str, Any] | None = None,
    ) -> TranscodeResult:
        """POST /video/transcode for an uploaded video (several templates: several outputs).

        overlays: watermark and text parameters, e.g. from overlay_params().
        """
        if definitions is not None and not isinstance(definitions, str):
            definitions = ",".join(definitions)
        if template is not None and not isinstance(template, str):
            template = ",".join(template)
        params = {
            "vid": vid,
            "priority": priority,
            "definitions": definitions,
            "codec": codec,
            "template": template,
            **(overlays or {}),
        }
        return TranscodeResult.from_dict(self.request("POST", "/video/transcode", params))

    def transcode_from(
        self,
        src: str,
        dst: str | None = None,
        priority: int | None = None,
        ttl: int | None = None,
    ) -> TranscodeResult:
        """POST /video/transcode with a source URI: a new video (deleted after ttl seconds)."""
        params = {"src": src, "dst": dst, "priority": priority, "ttl": ttl}
        return TranscodeResult.from_dict(self.request("POST", "/video/transcode", params))

    def clip(
        self,
        vid: int,
        ranges: Sequence[tuple[int, int]] | str,
        intro: int | None = None,
        outro: int | None = None,
        priority: int | None = None,
        definitions: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        """POST /video/clip: a new video of (start_ms, end_ms) ranges, with intro and outro."""
        if not isinstance(ranges, str):
            ranges = ",".join(f"{int(a)}-{int(b)}" for a, b in ranges)
        if definitions is not None and not isinstance(definitions, str):
            definitions = ",".join(definitions)
        params = {
            "vid": vid,
            "ranges": ranges,
            "intro": intro,
            "outro": outro,
            "priority": priority,
            "definitions": definitions,
        }
        return self.request("POST", "/video/clip", params)

    def retranscode(
        self,
        vid: int,
        template: str | None = None,
        codec: str | None = None,
        overlays: Mapping[str, Any] | None = None,
    ) -> TranscodeResult:
        """POST /video/retranscode: renditions are replaced atomically when done."""
        params = {"vid": vid, "template": template, "codec": codec, **(overlays or {})}
        return TranscodeResult.from_dict(self.request("POST", "/video/retranscode", params))

    def playurl(
        self,
        vid: int,
        definition: str | None = None,
        format: str | None = None,
        expires: int | None = None,
    ) -> PlayInfo:
        """GET /video/playurl: signed, expiring play URLs."""
        params = {"vid": vid, "definition": definition, "format": format, "expires": expires}
        return PlayInfo.from_dict(self.request("GET", "/video/playurl", params))

    def snapshot(self, vid: int, expires: int | None = None) -> Snapshots:
        """GET /video/snapshot: snapshot images (signed, expiring URLs)."""
        params = {"vid": vid, "expires": expires}
        return Snapshots.from_dict(self.request("GET", "/video/snapshot", params))

    def events(
        self,
        vid: int | None = None,
        since: int | None = None,
        timeout: float | None = None,
        poll_interval: float = 2.0,
    ) -> Iterator[Event]:
        """GET /video/events: live events (of one video with `vid`), for `timeout` s or forever.

        `since` replays the outbox after that event id (0: everything kept). Reconnects resume
        after the last event seen; a server without the route is polled (see events.py).
        """
        return iter_events(self, vid, since, timeout, poll_interval)

    def wait(
        self,
        vid: int,
        until: str = "playable",
        timeout: float = 600.0,
        interval: float = 2.0,
        on_status: Callable[[VideoStatus], None] | None = None,
    ) -> VideoStatus:
        """Poll status until the video reaches `until`; raises on upload/transcode failure."""
        if until not in STATUSES or until.endswith("_failed"):
            raise ValueError(f"until must be one of the non-failure statuses, not {until!r}")
        deadline = time.monotonic() + timeout
        pause = min(0.2, interval)
        while True:
            st = self.status(vid)
            if on_status is not None:
                on_status(st)
            if _reached(st, until):
                return st
            if st.status == "upload_failed":
                raise errors.UploadFailed(
                    f"video {vid} failed to upload: {st.error}", body=st.raw, status=0
                )
            if st.status == "transcode_failed":
                raise errors.TranscodeFailed(
                    f"video {vid} failed to transcode: {st.error}", body=st.raw, status=0
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.WaitTimeout(
                    f"video {vid} is {st.status} after {timeout:g} s, not {until}", body=st.raw
                )
            self.sleep(min(pause, left))
            pause = min(interval, pause * 1.5)


def _reached(st: VideoStatus, until: str) -> bool:
    """Whether a status answer is at or past `until` in the lifecycle."""
    if until == "playable":
        return st.playable or st.status == "playable"
    if st.status == until:
        return True
    order = {
        "uploading": 0,
        "uploaded": 1,
        "transcode_queued": 2,
        "transcoding": 3,
        "transcode_succeeded": 4,
        "playable": 5,
    }
    here = order.get(st.status)
    # transcode_failed is past "uploaded" (the bytes are there) but not past any transcode step.
    if st.status == "transcode_failed":
        return until == "uploaded"
    return here is not None and here >= order[until]
