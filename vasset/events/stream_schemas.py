"""Query parameters of GET /video/events (its answer is an event stream, not JSON)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from vasset.http.params import Count, Id

#: The longest a stream may be asked to last (a day); unset means until the client goes.
MAX_TIMEOUT = 86400
Seconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMEOUT)]


class EventsParams(msgspec.Struct):
    """Query of GET /video/events."""

    vid: Annotated[
        Id | None, msgspec.Meta(description="only this video's events", examples=[42])
    ] = None
    since: Annotated[
        Count | None,
        msgspec.Meta(
            description="resume after this event id (the Last-Event-ID header wins); "
            "without either, only events newer than the connection are sent",
            examples=[1200],
        ),
    ] = None
    timeout: Annotated[
        Seconds | None,
        msgspec.Meta(
            description="end the stream after this many seconds; 0 sends the stored events "
            "after since and ends (a catch-up call); unset: stream until the client disconnects",
            examples=[0],
        ),
    ] = None
