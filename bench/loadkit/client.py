"""A load client that spreads signed calls over several API instances and survives their deaths.

Every call goes to the next instance in turn. A connection error or a 5xx is a failed attempt:
the call moves to another instance and tries again (with a fresh signature) until its deadline.
Uploads use part mode: each part carries its MD5, so a part re-sent after a failure is checked
again, and after a failed part the client asks `GET /video/upload/resume` on the other instance
which parts the server holds, then sends only the missing ones.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.loadkit.content import Source
from tests.support.api import b64name, signed_query

#: Answers that mean "the same call may succeed in a moment" rather than "this call is wrong".
BUSY = {409: ("UploadInProgress",), 423: ("UploadLocked",), 429: ("Throttled",)}


@dataclass
class Answer:
    """Status and JSON body of one answered call."""

    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        """The error code of an error answer ('' otherwise)."""
        return str(self.body.get("code", ""))


class Unreachable(Exception):
    """No instance answered the call (without a 5xx) before its deadline."""


@dataclass
class CallStats:
    """Latency per call type and what went wrong, for the report."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: Counter = field(default_factory=Counter)  # 5xx answers by status
    connection_errors: Counter = field(default_factory=Counter)  # by call type
    failovers: int = 0
    answered: int = 0

    def record(self, kind: str, seconds: float) -> None:
        """One answered call (any status below 500)."""
        self.latencies[kind].append(seconds)
        self.answered += 1


class SpreadingClient:
    """Signed calls over instances (round robin), retried elsewhere on connection errors or 5xx."""

    def __init__(
        self,
        urls: list[str],
        app_key: str,
        app_secret: str,
        stats: CallStats,
        call_deadline: float = 180.0,
    ) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.app_key = app_key
        self.app_secret = app_secret
        self.stats = stats
        self.call_deadline = call_deadline
        self._turn = itertools.count()
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SpreadingClient:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        # No total timeout: a big part on a busy machine is slow, not dead; a dead instance
        # resets the connection, and sock_read catches one that hangs.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def next_instance(self) -> int:
        """The instance the next call starts on."""
        return next(self._turn) % len(self.urls)

    async def attempt(
        self,
        kind: str,
        instance: int,
        method: str,
        path: str,
        params: dict[str, Any],
        body: bytes | None = None,
    ) -> Answer | None:
        """One try on one instance: the answer, or None after a connection error or a 5xx."""
        assert self.session is not None
        query = signed_query(method, path, params, self.app_key, self.app_secret)
        url = f"{self.urls[instance]}{path}?{query}"
        headers = {"Content-Type": "application/octet-stream"} if body is not None else None
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.stats.connection_errors[kind] += 1
            return None
        if status >= 500:
            self.stats.server_errors[status] += 1
            return None
        self.stats.record(kind, time.perf_counter() - started)
        try:
            parsed = await asyncio.to_thread(_json, raw) if len(raw) > 65536 else _json(raw)
        except ValueError:
            parsed = {}
        return Answer(status, parsed)

    async def call(
        self, kind: str, method: str, path: str, params: dict[str, Any], body: bytes | None = None
    ) -> Answer:
        """The call's answer from some instance; busy answers and failures are retried."""
        deadline = time.monotonic() + self.call_deadline
        instance = self.next_instance()
        for tries in itertools.count():
            answer = await self.attempt(kind, instance, method, path, params, body)
            if answer is not None and answer.code not in BUSY.get(answer.status, ()):
                return answer
            if time.monotonic() > deadline:
                raise Unreachable(f"{kind}: no answer within {self.call_deadline:.0f}s")
            if answer is None:
                instance = (instance + 1) % len(self.urls)
                self.stats.failovers += 1
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(tries, 5)))
        raise AssertionError("unreachable")


def _json(raw: bytes) -> dict[str, Any]:
    import json

    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


@dataclass
class UploadRecord:
    """What the client knows about one upload it started."""

    source: Source
    auto: bool
    upid: str = ""
    vid: int = 0
    completed: bool = False
    server_md5: str = ""
    error: str = ""  # a refusal the client cannot retry past (a 4xx), for the report
    resumes: int = 0
    sent_bytes: int = 0


async def upload(client: SpreadingClient, record: UploadRecord) -> UploadRecord:
    """Run one upload to completion, resuming on another instance after each failed part."""
    src = record.source
    params = {"fn": b64name(src.name), "fsize": src.size, "psize": src.part_size}
    params["auto"] = int(record.auto)
    if src.md5:  # known up front only for clips; the server checks the whole file against it
        params["hash"] = src.md5
    init = await client.call("init", "POST", "/video/upload/init", params)
    if init.status != 200:
        record.error = f"init {init.status} {init.code}"
        return record
    record.upid, record.vid = init.body["upload_id"], int(init.body["vid"])
    missing = list(range(1, src.part_count + 1))
    instance = client.next_instance()
    deadline = time.monotonic() + client.call_deadline
    while not record.completed and not record.error:
        if time.monotonic() > deadline:
            raise Unreachable(f"upload {record.upid}: no progress within the deadline")
        if not missing:
            # Every part was accepted but no answer said "uploaded" (a lost answer, or a
            # completion cut short): ask the server; re-sending the last part completes it.
            missing = await resume(client, record) or [src.part_count]
            if record.completed or record.error:
                break
            await asyncio.sleep(0.5)
        pseq = missing[0]
        body, part_md5 = await asyncio.to_thread(src.part_with_md5, pseq)
        answer = await client.attempt(
            "part",
            instance,
            "PUT",
            "/video/upload/upload",
            {"upid": record.upid, "pseq": pseq, "hash": part_md5},
            body,
        )
        if answer is None:
            # The instance died or failed: move over and ask what the server already holds.
            instance = (instance + 1) % len(client.urls)
            client.stats.failovers += 1
            record.resumes += 1
            await asyncio.sleep(0.2)
            missing = await resume(client, record)
            continue
        if answer.code in BUSY.get(answer.status, ()):
            await asyncio.sleep(1.0)
            continue
        if answer.status != 200:
            record.error = f"part {pseq}: {answer.status} {answer.code}"
            break
        deadline = time.monotonic() + client.call_deadline
        record.sent_bytes += len(body)
        missing.pop(0)
        if answer.body.get("status") == "uploaded":
            record.completed, record.server_md5 = True, str(answer.body.get("md5", ""))
    return record


async def resume(client: SpreadingClient, record: UploadRecord) -> list[int]:
    """The parts the server still lacks (marking the record completed when it has them all)."""
    answer = await client.call("resume", "GET", "/video/upload/resume", {"upid": record.upid})
    if answer.status != 200:
        record.error = f"resume {answer.status} {answer.code}"
        return []
    if answer.body.get("status") == "uploaded":
        record.completed, record.server_md5 = True, str(answer.body.get("md5", ""))
        return []
    if answer.body.get("status") != "uploading":
        record.error = f"resume: {answer.body.get('status')} {answer.body.get('error')}"
        return []
    return sorted(int(p) for p in answer.body.get("missing", []))
