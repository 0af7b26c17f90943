"""Server-Sent Events framing (the WHATWG event-stream format), pure."""

from __future__ import annotations

MEDIA_TYPE = "text/event-stream"

#: Sent first, so a client sees the stream open before the first event (and learns the retry).
OPENING = b"retry: 3000\n: connected\n\n"
HEARTBEAT = b": hb\n\n"


def frame(event_id: int, type_: str, data: str) -> bytes:
    """One event: id, type and one data line per line of data (JSON bodies have one)."""
    lines = [f"id: {event_id}", f"event: {type_}"]
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def parse(text: str) -> list[dict[str, str]]:
    """The events of a stream's text, as {"id", "event", "data"} (comments skipped)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            if "data" in current:
                events.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in current:
            current["data"] += "\n" + value
        elif name in ("id", "event", "data", "retry"):
            current[name] = value
    return events
