"""Download controls across API instances: the global stream cap and the per-app stream rate.

Several `vasset serve` processes share one database and one Redis prefix; objects are written
straight into the local store and fetched through signed /play URLs over real sockets.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import httpx
import pytest
import redis

from tests.support.server import ServerProcess, stalled_reader
from tests.support.stack import Stack
from vasset import redis_keys
from vasset.playback.limits import RATE_BURST, STREAM_LEASE
from vasset.playback.urls import play_path

MIB = 1 << 20
RATE = 2 * MIB  # bytes per second per app on the paced instances
CAPPED = {"VASSET_MAX_CONCURRENT_STREAMS_GLOBAL": "2"}
PACED = {"VASSET_MAX_CONCURRENT_STREAMS_GLOBAL": "0", "VASSET_STREAM_RATE_PER_APP": str(RATE)}


def _secret(stack: Stack) -> bytes:
    from vasset.db import create_engine
    from vasset.playback.secret import url_secret

    async def secret() -> bytes:
        engine = create_engine(stack.env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            return await url_secret(engine)
        finally:
            await engine.dispose()

    return asyncio.run(secret())


class Fleet:
    """A stack's database, store and Redis prefix, served by several API instances."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.secret = _secret(stack)
        self.servers: dict[str, ServerProcess] = {"a": stack.server}  # type: ignore[dict-item]
        self.redis = redis.Redis.from_url(stack.env["VASSET_REDIS_URL"])

    def add(self, name: str, **env: str) -> ServerProcess:
        log = self.stack.root / f"api-{name}.log"
        self.servers[name] = ServerProcess({**self.stack.env, **env}, log_path=log).start()
        return self.servers[name]

    def store(self, key: str, data: bytes) -> str:
        """Write an object into the shared store; returns its signed path (any instance)."""
        obj = self.stack.root / "storage" / "objects" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(data)
        return play_path(self.secret, key, int(time.time()) + 3600)

    def url(self, name: str, path: str) -> str:
        return self.servers[name].url + path

    def holders(self) -> int:
        """Live global stream leases in Redis (every instance)."""
        key = redis_keys.streams_global(self.stack.env["VASSET_REDIS_PREFIX"])
        return int(self.redis.zcount(key, time.time(), "+inf"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("downloads")
    stack = Stack(root, workers=0, **CAPPED).start()
    f = Fleet(stack)
    try:
        # No global cap on "off" (the default): it neither counts nor is counted.
        instances = {"b": CAPPED, "off": {"VASSET_MAX_CONCURRENT_STREAMS_GLOBAL": "0"}}
        instances.update(p1=PACED, p2=PACED)
        starting = [
            threading.Thread(target=f.add, args=(name,), kwargs=env)
            for name, env in instances.items()
        ]
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        assert set(f.servers) == {"a", *instances}, "an API instance did not start"
        f.big = f.store("media/1/1-cap/360p.mp4", os.urandom(8 * MIB))
        yield f
    finally:
        for name, server in f.servers.items():
            if name != "a":
                server.stop()
        stack.stop()


def _reader(fleet: Fleet, name: str):
    sock, got = stalled_reader(fleet.servers[name].port, fleet.big)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return sock


def _throttled(response: httpx.Response) -> bool:
    if response.status_code != 429:
        return False
    assert response.json()["code"] == "Throttled" and int(response.headers["retry-after"]) >= 1
    return True


def _eventually_served(fleet: Fleet, name: str, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        r = httpx.get(fleet.url(name, fleet.big), timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def test_global_cap_holds_across_instances_and_frees_on_close_and_on_kill(fleet):
    first, second = _reader(fleet, "a"), _reader(fleet, "b")
    killed: ServerProcess | None = None
    try:
        assert fleet.holders() == 2
        # The third stream is refused on either instance (each is far below its own cap of 50).
        for name in ("a", "b"):
            assert _throttled(httpx.get(fleet.url(name, fleet.big), timeout=30)), name
        # A HEAD streams nothing and is not capped.
        assert httpx.head(fleet.url("b", fleet.big)).status_code == 200
        # An instance without the global cap is neither refused nor counted.
        r = httpx.get(fleet.url("off", fleet.big), timeout=30)
        assert r.status_code == 200 and len(r.content) == 8 * MIB
        assert fleet.holders() == 2

        # A closed stream frees its slot at once for every instance.
        first.close()
        r = _eventually_served(fleet, "b", within=10)
        assert r.status_code == 200 and len(r.content) == 8 * MIB

        # A SIGKILLed instance's stream keeps its slot until its lease runs out, no longer.
        killed = fleet.add("doomed", **CAPPED)
        third = stalled_reader(killed.port, fleet.big)[0]
        assert fleet.holders() == 2
        killed.kill()
        third.close()
        assert _throttled(httpx.get(fleet.url("b", fleet.big), timeout=30))
        r = _eventually_served(fleet, "b", within=STREAM_LEASE * 3)
        assert r.status_code == 200 and len(r.content) == 8 * MIB
    finally:
        first.close()
        second.close()
        if killed is not None:
            killed.stop()
    deadline = time.monotonic() + 10
    while fleet.holders() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fleet.holders() == 0


def _timed_get(url: str, out: dict, name: str) -> None:
    start = time.monotonic()
    r = httpx.get(url, timeout=120)
    out[name] = (r.status_code, len(r.content), time.monotonic())
    out[name + "_took"] = time.monotonic() - start


def test_app_rate_is_shared_by_instances_and_apps_do_not_slow_each_other(fleet):
    # Two apps: one named by a media/ key of a real video, one by a sources/ key.
    vid = fleet.stack.api.upload("v.mp4", os.urandom(1000), 1000)["vid"]
    size = 4 * MIB
    slow = [fleet.store(f"media/{vid}/1-rate/{n}.mp4", os.urandom(size)) for n in (1, 2)]
    other_app = int(fleet.stack.app["id"]) + 1000
    fast = fleet.store(f"sources/{other_app}/1/x/source", os.urandom(MIB // 2))
    results: dict = {}
    threads = [
        threading.Thread(target=_timed_get, args=(fleet.url(server, path), results, f"slow{n}"))
        for n, (server, path) in enumerate(zip(("p1", "p2"), slow, strict=True))
    ]
    threads.append(
        threading.Thread(target=_timed_get, args=(fleet.url("p2", fast), results, "fast"))
    )
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["slow0"][:2] == (200, size) and results["slow1"][:2] == (200, size)
    assert results["fast"][:2] == (200, MIB // 2)
    # Both instances together kept the app near its rate: 8 MiB at 2 MiB/s, less one burst.
    took = max(results["slow0"][2], results["slow1"][2]) - start
    assert took >= 2 * size / RATE - RATE_BURST - 0.1, took
    # The other app was not held back behind them.
    assert results["fast"][2] < min(results["slow0"][2], results["slow1"][2]), results
