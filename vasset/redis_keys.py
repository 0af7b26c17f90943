"""Every Redis key and channel vasset uses, one function per family; nobody builds keys by hand.

Every key starts with settings.redis_prefix (deployments and test runs share a Redis by prefix).
Keys that one Lua script, MULTI or pipeline touches together share a ``{hash tag}``, so on a
Redis Cluster they hash to one slot (Redis hashes only the text between the first ``{`` and the
next ``}``). Families of one key need no tag and keep their historic names.

A prefix that itself contains ``{...}`` puts every key in one slot: still correct, just not
spread over the cluster's nodes.
"""

from __future__ import annotations

# FFmpeg slot semaphore: one Lua call reads and writes all three (vasset/transcode/slots.py).
SLOTS_TAG = "{slots}"


def slots_global(prefix: str) -> str:
    """Sorted set of every FFmpeg slot holder, scored by lease expiry."""
    return f"{prefix}{SLOTS_TAG}:global"


def slots_node(prefix: str, node: str) -> str:
    """Sorted set of one node's FFmpeg slot holders."""
    return f"{prefix}{SLOTS_TAG}:node:{node}"


def slots_epoch(prefix: str) -> str:
    """When the slot sets were (re)created: acquisitions wait one lease after it."""
    return f"{prefix}{SLOTS_TAG}:epoch"


# Signed calls: a nonce and its app's rate window are written in one pipeline.
def _app_tag(app_key: str) -> str:
    return "{app:" + app_key + "}"


def nonce(prefix: str, app_key: str, random: str) -> str:
    """A spent nonce of an app (SET NX EX)."""
    return f"{prefix}{_app_tag(app_key)}:nonce:{random}"


def rate_window(prefix: str, app_key: str, second: int) -> str:
    """An app's signed calls in one wall-clock second (INCR, EXPIRE)."""
    return f"{prefix}{_app_tag(app_key)}:rate:{second}"


def app_generation(prefix: str) -> str:
    """Changes whenever any app changes: API processes drop their cached apps."""
    return f"{prefix}apps:generation"


def lock(prefix: str, name: str) -> str:
    """A lease lock (vasset/locks.py), e.g. lock(prefix, "janitor")."""
    return f"{prefix}lock:{name}"


def job_wakeup(prefix: str) -> str:
    """List an enqueue pushes to so an idle worker's BLPOP returns at once."""
    return f"{prefix}jobs:notify"


def console_login_failures(prefix: str, client: str) -> str:
    """Failed console logins of one client address (a Lua check-and-count)."""
    return f"{prefix}console:login:{client}"


def events_channel(prefix: str, app_id: int) -> str:
    """Pub/sub channel announcing an app's new events (channels are not keys: no slot)."""
    return f"{prefix}events:{app_id}"


def events_pattern(prefix: str) -> str:
    """PSUBSCRIBE pattern matching every app's events channel (glob characters escaped)."""
    return _glob_escape(f"{prefix}events:") + "*"


def _glob_escape(value: str) -> str:
    """value with Redis glob characters escaped (a prefix may contain them)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


# Download controls (vasset/playback/limits.py): one key per Lua call, each in its own slot.
def streams_global(prefix: str) -> str:
    """Sorted set of every file stream of every API instance, scored by lease expiry."""
    return f"{prefix}{{streams}}:global"


def stream_rate_clock(prefix: str, app_id: int) -> str:
    """When an app's streamed bytes so far will have been sent at its rate (GCRA)."""
    return f"{prefix}{{streamrate:{app_id}}}:clock"
