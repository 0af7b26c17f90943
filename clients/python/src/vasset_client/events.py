"""Live events: GET /video/events read as Server-Sent Events, with a polling fallback.

The stream is signed like every call; each reconnect is signed anew and resumes after the last
event seen (``Last-Event-ID`` and ``since=``), so a dropped connection loses nothing. A server
without /video/events (404 NotFound) is polled instead: /video/status for one video, the first
page of /video/list otherwise, and status changes come out as synthesized events
(``Event.synthesized``; no id, no seq).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from vasset_client import errors

if TYPE_CHECKING:
    from vasset_client.client import Client

__all__ = ["STATUS_EVENT", "TERMINAL", "Event", "iter_events", "parse_sse", "poll_events"]

#: The event a video's move into a status raises (what polling synthesizes).
STATUS_EVENT = {
    "uploading": "upload.created",
    "uploaded": "upload.completed",
    "upload_failed": "upload.failed",
    "transcode_queued": "video.transcode.queued",
    "transcoding": "video.transcode.started",
    "transcode_succeeded": "video.transcode.succeeded",
    "transcode_failed": "video.transcode.failed",
    "playable": "video.playable",
    "deleted": "video.deleted",
}
#: Event types after which a video changes no more until someone acts on it.
TERMINAL = frozenset({"video.playable", "upload.failed", "video.transcode.failed", "video.deleted"})


@dataclass(frozen=True)
class Event:
    """One event: `type`, `data` (vid, status, seq, ...), `id` (the outbox id; None if polled)."""

    id: int | None
    type: str
    data: dict[str, Any]
    timestamp: str | None = None
    synthesized: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def vid(self) -> int | None:
        """The video the event is about."""
        value = self.data.get("vid")
        return int(value) if value is not None else None

    @property
    def seq(self) -> int | None:
        """The video's event sequence number (grows by one per event of that video)."""
        value = self.data.get("seq")
        return int(value) if value is not None else None

    @property
    def status(self) -> str | None:
        """The video's status after the event."""
        return self.data.get("status")

    @property
    def progress(self) -> int | None:
        """Transcode progress in percent, when the event carries it."""
        value = self.data.get("progress")
        return int(value) if value is not None else None

    @classmethod
    def from_sse(cls, event_id: str | None, name: str | None, data: str) -> Event:
        """An event from one SSE frame (`data` is the JSON body)."""
        body = json.loads(data)
        if not isinstance(body, dict):
            body = {"data": body}
        inner = body.get("data")
        return cls(
            id=int(event_id) if event_id and event_id.isdigit() else None,
            type=str(name or body.get("type") or "message"),
            data=inner if isinstance(inner, dict) else {},
            timestamp=body.get("timestamp"),
            raw=body,
        )


@dataclass
class SseFrame:
    """One dispatched Server-Sent Events frame."""

    id: str | None
    event: str | None
    data: str
    retry: int | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[SseFrame]:
    """Frames of an event stream (WHATWG rules: comments skipped, data lines joined by \\n)."""
    event_id: str | None = None
    name: str | None = None
    data: list[str] = []
    retry: int | None = None
    for line in lines:
        if not line:
            if data:
                yield SseFrame(event_id, name, "\n".join(data), retry)
            name, data, retry = None, [], None
            continue
        if line.startswith(":"):
            continue  # a comment: the server's heartbeat
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            data.append(value)
        elif key == "event":
            name = value
        elif key == "id" and "\0" not in value:
            event_id = value  # the last id persists across frames, as in EventSource
        elif key == "retry" and value.isdigit():
            retry = int(value)


def iter_events(
    client: Client,
    vid: int | None = None,
    since: int | None = None,
    timeout: float | None = None,
    poll_interval: float = 2.0,
) -> Iterator[Event]:
    """Events of the app (or of one video) until `timeout` seconds pass; see Client.events."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last_id = since
    failures = 0
    skew_fixed = False
    delay = 0.0
    while True:
        left = _left(deadline)
        if left is not None and left <= 0:
            return
        if delay:
            client.sleep(min(delay, left) if left is not None else delay)
            delay = 0.0
            continue
        params: dict[str, Any] = {"vid": vid}
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id is not None:
            params["since"] = last_id
            headers["Last-Event-ID"] = str(last_id)
        # The server heartbeats every 15 s: a read longer than the client's timeout is a dead
        # connection; near the deadline, the read waits no longer than what is left.
        read = client.timeout if left is None else max(0.1, min(client.timeout, left))
        timeouts = httpx.Timeout(client.timeout, read=read)
        url = client.signed_url("GET", "/video/events", params)
        try:
            with client._http.stream("GET", url, headers=headers, timeout=timeouts) as response:
                if response.status_code >= 400:
                    response.read()
                    error = errors.from_response(
                        response.status_code, _error_body(response), response.headers
                    )
                    if response.status_code == 404 and error.code == "NotFound":
                        # No /video/events on this server (an older version): poll instead.
                        yield from poll_events(client, vid, _left(deadline), poll_interval)
                        return
                    expired = isinstance(error, errors.SignatureExpired)
                    if expired and not skew_fixed and error.server_time is not None:  # type: ignore[attr-defined]
                        # Our clock is off: sign with the server's time, reconnect at once.
                        client.clock_offset = error.server_time - time.time()  # type: ignore[attr-defined]
                        skew_fixed = True
                        continue
                    if not client._retryable(error) or failures >= client.retries:
                        raise error
                    failures += 1
                    retry_after = getattr(error, "retry_after", None)
                    delay = client.backoff_delay(failures) if retry_after is None else retry_after
                    continue
                failures = 0
                retry_ms = None
                for frame in parse_sse(response.iter_lines()):
                    retry_ms = frame.retry if frame.retry is not None else retry_ms
                    event = Event.from_sse(frame.id, frame.event, frame.data)
                    if event.id is not None:
                        last_id = event.id
                    yield event
                    if _expired(deadline):
                        return
                # The server ended the stream (a restart, a deploy): reconnect after its pause.
                delay = retry_ms / 1000 if retry_ms is not None else 0.5
        except httpx.TransportError as exc:
            if _expired(deadline):
                return
            if failures >= client.retries:
                raise errors.NetworkError(f"{type(exc).__name__}: {exc}") from exc
            delay = client.backoff_delay(failures)
            failures += 1


def poll_events(
    client: Client, vid: int | None, timeout: float | None, interval: float = 2.0
) -> Iterator[Event]:
    """Synthesized events from polling: one video's status, or the newest 100 videos' statuses.

    For one video the first event reports where it is now; for the whole app the first poll only
    takes note (as a live stream shows only what happens from now on).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[int, tuple[str, int]] = {}
    first = True
    while True:
        if vid is not None:
            try:
                st = client.status(vid)
                states = [(st.vid or vid, st.status, st.progress, st.raw)]
            except errors.VideoNotFound:
                if vid not in seen:
                    raise
                yield _synthesized(vid, "deleted", 0, {})
                return
        else:
            page = client.list_videos(limit=100)
            states = [
                (v.vid, v.status, int(v.raw.get("progress") or 0), v.raw) for v in page.videos
            ]
        for v, status, progress, raw in states:
            before = seen.get(v)
            seen[v] = (status, progress)
            if before == (status, progress) or (first and vid is None):
                continue
            event = _synthesized(v, status, progress, raw, before)
            yield event
            if vid is not None and event.type in TERMINAL:
                return
        first = False
        left = _left(deadline)
        if left is not None and left <= 0:
            return
        client.sleep(interval if left is None else min(interval, left))


def _synthesized(
    vid: int, status: str, progress: int, raw: dict[str, Any], before: tuple[str, int] | None = None
) -> Event:
    type_ = STATUS_EVENT.get(status, "video.status")
    if status == "transcoding" and before is not None and before[0] == "transcoding":
        type_ = "video.transcode.progress"
    data: dict[str, Any] = {"vid": vid, "status": status, "progress": progress}
    if raw.get("error"):
        data["error"] = raw["error"]
    return Event(id=None, type=type_, data=data, synthesized=True, raw={"data": data})


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return data if isinstance(data, dict) else {"message": response.text[:200]}
