"""HTTP route of GET /video/events: live events as Server-Sent Events (signed).

The outbox (MySQL) is the truth: a stream sends the app's events after its cursor, in id order,
each once. It wakes on the app's Redis channel (through the process's one hub connection) and
polls every sse_poll_interval seconds as well, so Redis down, a FLUSHALL or a lost publish only
delays events. The signature is checked at connect; the stream may outlive its window. It holds
no database connection between reads, ends when the client goes, on server shutdown, or after
``timeout`` seconds (``timeout=0``: send what is stored and end).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Schema,
)
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from vasset import errors
from vasset.events import repository as repo
from vasset.events import sse
from vasset.events.hub import Hub, Waiter
from vasset.events.stream_schemas import EventsParams
from vasset.http.deps import Caller, Ctx, query
from vasset.http.openapi import doc

log = structlog.get_logger(__name__)

#: Events read per query; a backlog is sent a page at a time.
PAGE = 500
#: An event whose id does not follow the cursor is held until it is this old (ms). Ids are
#: allocated at INSERT and become visible at COMMIT, so a lower id may still commit after a
#: higher one; once an event is SETTLE_MS old, every lower id belongs to a transaction that
#: ended (event-writing transactions are short). Sending strictly in id order keeps
#: Last-Event-ID exact: a resume neither repeats nor skips.
SETTLE_MS = 1000
_DIGITS = re.compile(r"^[0-9]{1,18}$")

EXAMPLE = (
    "retry: 3000\n: connected\n\n"
    "id: 1201\nevent: video.transcode.progress\n"
    'data: {"type":"video.transcode.progress","timestamp":"2024-05-01T12:00:00.000Z",'
    '"data":{"vid":42,"upload_id":"u_8f3a","status":"transcoding","seq":7,"progress":40}}\n\n'
    ": hb\n\n"
)


class EventStream:
    """One client's stream: the cursor, the wake-up, and the loop that sends."""

    def __init__(
        self, ctx: Any, app_id: int, vid: int | None, after: int, timeout: int | None
    ) -> None:
        self.engine = ctx.engine
        self.settings = ctx.settings
        self.hub: Hub = ctx.hub
        self.app_id = app_id
        self.vid = vid
        self.cursor = after
        self.timeout = timeout

    async def run(self, send: Send, receive: Receive) -> None:
        """Send events until the client goes, the server stops, or the timeout passes."""
        waiter = self.hub.subscribe(self.app_id)
        watcher = asyncio.ensure_future(_watch_disconnect(receive, waiter))
        sent = 0
        try:
            await _body(send, sse.OPENING)
            sent = await self._loop(send, waiter)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, RuntimeError) as exc:  # the connection went away mid-send
            log.debug("event_stream_send_failed", error=repr(exc))
        finally:
            watcher.cancel()
            self.hub.unsubscribe(waiter)
            log.debug("event_stream_ended", app_id=self.app_id, sent=sent, cursor=self.cursor)

    async def _loop(self, send: Send, waiter: Waiter) -> int:
        loop = asyncio.get_running_loop()
        heartbeat = self.settings.sse_heartbeat
        poll = self.settings.sse_poll_interval
        deadline = None if self.timeout is None else loop.time() + self.timeout
        next_beat = loop.time() + heartbeat
        sent = 0
        while True:
            waiter.clear()  # before reading: a publish during the read wakes the next wait
            count, held_until = await self._drain(send)
            sent += count
            now = loop.time()
            if waiter.gone or self.hub.stopping.is_set():
                return sent
            if deadline is not None and now >= deadline and held_until is None:
                return sent  # a held event settles within SETTLE_MS: the timeout waits for it
            if now >= next_beat:
                await _body(send, sse.HEARTBEAT)
                next_beat = now + heartbeat
            until = min(next_beat, now + poll)
            if deadline is not None and deadline > now:
                until = min(until, deadline)
            if held_until is not None:
                until = min(until, held_until)
            try:
                await asyncio.wait_for(waiter.wait(), max(0.0, until - now))
            except TimeoutError:
                pass
            if waiter.gone or self.hub.stopping.is_set():
                return sent

    async def _drain(self, send: Send) -> tuple[int, float | None]:
        """Send every settled event after the cursor: (count, when to look again for a held one)."""
        count = 0
        while True:
            try:
                async with self.engine.connect() as conn:
                    rows = await repo.events_after(conn, self.app_id, self.cursor, self.vid, PAGE)
            except Exception as exc:  # database unreachable: keep the stream, retry at the poll
                log.warning("event_stream_read_failed", error=repr(exc))
                return count, None
            now_ms = time.time() * 1000
            chunks: list[bytes] = []
            held: float | None = None
            for row in rows:
                age = now_ms - row.create_time
                if row.id != self.cursor + 1 and age < SETTLE_MS:
                    held = asyncio.get_running_loop().time() + (SETTLE_MS - age) / 1000
                    break
                chunks.append(sse.frame(row.id, row.type, row.body))
                self.cursor = row.id
            if chunks:
                await _body(send, b"".join(chunks))
                count += len(chunks)
            if held is not None or len(rows) < PAGE:
                return count, held


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _watch_disconnect(receive: Receive, waiter: Waiter) -> None:
    """Mark the stream gone and wake it once the client disconnects."""
    while (await receive())["type"] != "http.disconnect":
        pass
    waiter.gone = True
    waiter.set()


class _ASGIEventStream(ASGIResponse):
    """The ASGI side of EventStreamResponse: headers, then the stream's loop."""

    __slots__ = ("stream",)
    _should_set_content_length = False

    def __init__(self, stream: EventStream, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.start_response(send=send)
        await self.stream.run(send, receive)


class EventStreamResponse(Response):
    """A text/event-stream answer whose body is an EventStream."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(
            content=b"",
            status_code=200,
            media_type=sse.MEDIA_TYPE,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.stream = stream

    def to_asgi_response(
        self,
        app: Any,
        request: Request,
        *,
        headers: dict[str, str] | None = None,
        cookies: Iterable[Any] | None = None,
        **_: Any,
    ) -> ASGIResponse:
        """The ASGI response that runs the stream."""
        merged = {**headers, **self.headers} if headers is not None else dict(self.headers)
        # As documented, without Litestar's "; charset=utf-8" (event streams are always UTF-8).
        merged["content-type"] = sse.MEDIA_TYPE
        return _ASGIEventStream(
            self.stream,
            cookies=[*self.cookies, *(cookies or ())],
            headers=merged,
            media_type=sse.MEDIA_TYPE,
            status_code=200,
        )


def resume_point(header: str | None, since: int | None) -> int | None:
    """The id to resume after: the Last-Event-ID header (a reconnect) wins over since."""
    value = (header or "").strip()
    if value:
        if not _DIGITS.match(value):
            raise errors.InvalidParameter(
                "invalid Last-Event-ID: expected an event id", parameter="Last-Event-ID"
            )
        return int(value)
    return since


_DOC = doc(tag="videos", query=EventsParams, codes=(errors.VideoNotFound,))
_BASE_OPERATION = _DOC["operation_class"]


#: The fields of one Server-Sent Event as vasset sends it; data is the event's JSON body.
_EVENT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["id", "event", "data"],
    properties={
        "id": Schema(type=OpenAPIType.STRING, pattern=_DIGITS.pattern),
        "event": Schema(type=OpenAPIType.STRING),
        "data": Schema(type=OpenAPIType.STRING, content_media_type="application/json"),
        "retry": Schema(type=OpenAPIType.INTEGER),
    },
)


class _EventsOperation(_BASE_OPERATION):  # type: ignore[misc,valid-type]
    """The generated operation, with the event-stream answer and the Last-Event-ID header."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        params: list[Any] = list(getattr(self, "parameters", None) or [])
        self.parameters = [
            *params,
            Parameter(
                name="Last-Event-ID",
                param_in="header",
                required=False,
                description="the id of the last event received (EventSource sends it)",
                schema=Schema(type=OpenAPIType.STRING, pattern=_DIGITS.pattern),
            ),
        ]
        responses: dict[str, Any] = dict(getattr(self, "responses", None) or {})
        responses["200"] = OpenAPIResponse(
            description="Server-Sent Events: `id:` the event id, `event:` its type, `data:` "
            "the event body (docs/EVENTS.md); a `: hb` comment every sse_heartbeat seconds",
            content={
                sse.MEDIA_TYPE: OpenAPIMediaType(
                    # One event of the stream (how SSE-aware tools such as schemathesis and
                    # OpenAPI 3.2's itemSchema read an event-stream schema), not the whole body.
                    schema=_EVENT_SCHEMA,
                    examples={"example": Example(value=EXAMPLE)},
                )
            },
        )
        self.responses = dict(sorted(responses.items()))


_DOC["operation_class"] = _EventsOperation


@get("/video/events", dependencies={"q": query(EventsParams, signed=True)}, **_DOC)
async def video_events(
    ctx: Ctx, caller: Caller, q: NamedDependency[EventsParams], request: Request
) -> EventStreamResponse:
    """Live events of the app's videos (or one video's) as Server-Sent Events."""
    after = resume_point(request.headers.get("last-event-id"), q.since)
    if q.vid is not None:
        await ctx.videos.get(caller.id, q.vid)  # VideoNotFound unless it is the caller's
    if after is None:
        async with ctx.engine.connect() as conn:
            after = await repo.last_event_id(conn, caller.id)
    return EventStreamResponse(EventStream(ctx, caller.id, q.vid, after, q.timeout))


ROUTES = [video_events]
