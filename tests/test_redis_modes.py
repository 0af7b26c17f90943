"""vasset against every Redis topology it supports: standalone, a real 3-master Redis Cluster and a
real Sentinel set (master, replica, three sentinels), with real `vasset serve` and `vasset worker`
processes; and Sentinel failovers in the middle of an upload and of a transcode.

Each xdist process starts its own cluster and sentinel set (tests/support/redis_cluster.py);
each stack has its own database and key prefix.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.cluster import key_slot

from tests import media
from tests.support.redis_cluster import RedisClusterProcs, SentinelSet, wait_until
from tests.support.stack import Stack
from tests.support.workers import FfmpegSampler, ffmpeg_pids, long_clip, medium_clip
from tests.test_nonces import check_batching
from vasset import redis_keys
from vasset.transcode.slots import SlotSemaphore

MODES = ["standalone", "cluster", "sentinel"]
REDIS_URL = os.environ.get("VASSET_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = RedisClusterProcs(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sentinel_set(tmp_path_factory):
    sentinels = SentinelSet(tmp_path_factory.mktemp("redis-sentinel")).start()
    yield sentinels
    sentinels.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return media.shared_dir(tmp_path_factory)


def redis_env(mode: str, request) -> dict[str, str]:
    """VASSET_REDIS_* for mode (starting the topology on first use)."""
    if mode == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return {"VASSET_REDIS_MODE": "cluster", "VASSET_REDIS_URL": cluster.url}
    if mode == "sentinel":
        return request.getfixturevalue("sentinel_set").env()
    return {"VASSET_REDIS_MODE": "standalone", "VASSET_REDIS_URL": REDIS_URL}


def sync_client(stack: Stack, request):
    """A synchronous client of the stack's Redis, in the stack's mode."""
    mode = stack.env["VASSET_REDIS_MODE"]
    if mode == "cluster":
        return request.getfixturevalue("redis_cluster").client()
    if mode == "sentinel":
        return request.getfixturevalue("sentinel_set").master_client()
    return redis.Redis.from_url(REDIS_URL)


def start_stack(request, root: Path, mode: str, workers: int = 2) -> Stack:
    """A stack of one API and `workers` workers sharing a global FFmpeg cap of 1."""
    stack = Stack(
        root,
        workers=workers,
        **redis_env(mode, request),
        VASSET_FFMPEG_GLOBAL_LIMIT="1",
        VASSET_FFMPEG_NODE_LIMIT="2",
        VASSET_LADDER="360p",
        VASSET_IMAGE_COUNT="1",
        VASSET_TEST_FLEET=secrets.token_hex(6),
    )
    client = sync_client(stack, request)
    try:
        # A brand-new prefix has no FFmpeg anywhere: no need to wait out the slot epoch.
        client.set(redis_keys.slots_epoch(stack.env["VASSET_REDIS_PREFIX"]), 0, nx=True)
    finally:
        client.close()
    return stack.start()


@pytest.fixture(params=MODES)
def stack(request, tmp_path_factory):
    stack = start_stack(request, tmp_path_factory.mktemp(f"modes-{request.param}"), request.param)
    yield stack
    stack.stop()


def call(stack: Stack, method: str, path: str, params=None, content=None) -> httpx.Response:
    """A signed call, retried (freshly signed) while it answers 503; a 5xx other than 503 fails."""
    api = stack.api
    deadline = time.monotonic() + 30
    while True:
        r = api.call(method, path, params, content=content)
        assert r.status_code < 500 or r.status_code == 503, r.text
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def upload_parts(stack: Stack, data: bytes, name: str, psize: int, auto: int, between=None) -> dict:
    """A part-mode upload, calling between() after the first half of the parts."""
    init = call(
        stack,
        "POST",
        "/video/upload/init",
        {
            "fn": name,
            "fsize": len(data),
            "psize": psize,
            "hash": hashlib.md5(data).hexdigest(),
            "auto": auto,
        },
    )
    assert init.status_code == 200, init.text
    body = init.json()
    count = body["part_count"]
    assert count >= 2, body
    answer: dict = {}
    for i in range(count):
        if i == count // 2 and between is not None:
            between()
        part = data[i * psize : (i + 1) * psize]
        params = {"upid": body["upload_id"], "pseq": i + 1, "hash": hashlib.md5(part).hexdigest()}
        r = call(stack, "PUT", "/video/upload/upload", params, content=part)
        assert r.status_code == 200, r.text
        answer = r.json()
    return answer


def stored_with_md5(stack: Stack, md5: str) -> list[Path]:
    """Files in the stack's local storage whose content has this MD5."""
    found = []
    for path in (stack.root / "storage").rglob("*"):
        if path.is_file() and hashlib.md5(path.read_bytes()).hexdigest() == md5:
            found.append(path)
    return found


def b64(name: str) -> str:
    import base64

    return base64.b64encode(name.encode()).decode()


# ---- every mode (behind Sentinel, with failovers in the middle)


def test_signing_uploads_the_ffmpeg_cap_and_transcodes(stack, request, clips):
    mode = stack.env["VASSET_REDIS_MODE"]
    sentinels = request.getfixturevalue("sentinel_set") if mode == "sentinel" else None
    failovers: list[tuple[int, int]] = []

    def failover() -> None:
        if sentinels is not None:
            before = sentinels.master_port()
            failovers.append((before, sentinels.failover()))

    # Signing: a fresh nonce works, a reused one is refused, and it lives in this mode's Redis
    # (not, say, a standalone fallback on 6379).
    nonce = "modes-" + secrets.token_hex(10)
    first = stack.api.call("GET", "/video/upload/limits", random=nonce)
    assert first.status_code == 200, first.text
    again = stack.api.call("GET", "/video/upload/limits", random=nonce)
    assert again.status_code == 401 and again.json()["code"] == "SignatureNonceUsed", again.text
    client = sync_client(stack, request)
    try:
        key = redis_keys.nonce(stack.env["VASSET_REDIS_PREFIX"], stack.app["app_key"], nonce)
        assert client.exists(key) == 1
    finally:
        client.close()

    # A part-mode upload, with a failover between its parts behind Sentinel.
    data = os.urandom(700 * 1024)
    md5 = hashlib.md5(data).hexdigest()
    done = upload_parts(stack, data, b64("parts.bin"), 100 * 1024, auto=0, between=failover)
    assert done["status"] == "uploaded" and done["md5"] == md5, done
    assert stored_with_md5(stack, md5), "the completed file is not in storage"

    # Two jobs, two workers, one global FFmpeg slot; behind Sentinel a failover mid-transcode.
    marker = stack.env["VASSET_TEST_FLEET"]
    sources = [long_clip(clips) if sentinels else medium_clip(clips), media.landscape(clips)]
    with FfmpegSampler(marker) as sampler:
        vids = [upload_in_two(stack, path)["vid"] for path in sources]
        if sentinels is not None:
            wait_until(lambda: ffmpeg_pids(marker), 60, "an FFmpeg run to start")
            failover()
        for vid in vids:
            assert stack.wait(vid, timeout=120)["status"] == "playable"
    assert sampler.max == 1, sampler.history
    if sentinels is not None:
        assert len(failovers) == 2 and all(old != new for old, new in failovers), failovers
        # Signing still works against the new master.
        status = call(stack, "GET", "/video/status", {"vid": done["vid"]})
        assert status.json()["status"] == "uploaded"


def upload_in_two(stack: Stack, path: Path) -> dict:
    """A clip uploaded in two parts, queued for transcoding."""
    data = path.read_bytes()
    psize = max(100 * 1024, (len(data) + 1) // 2)
    done = upload_parts(stack, data, b64(path.name), psize, auto=1)
    assert done["status"] == "uploaded", done
    return done


# ---- key layout


def test_keys_used_together_map_to_one_cluster_slot():
    for prefix in ("vasset:", "a{b:", "{tenant}:", "x}y{:"):
        slots = {
            key_slot(k.encode())
            for k in (
                redis_keys.slots_global(prefix),
                redis_keys.slots_node(prefix, "host-1"),
                redis_keys.slots_node(prefix, "other.example"),
                redis_keys.slots_epoch(prefix),
            )
        }
        assert len(slots) == 1, (prefix, slots)
        for app_key in ("ak_1", "0123456789abcdef"):
            pair = {
                key_slot(redis_keys.nonce(prefix, app_key, "n" * 16).encode()),
                key_slot(redis_keys.nonce(prefix, app_key, "m" * 20).encode()),
                key_slot(redis_keys.rate_window(prefix, app_key, 1_700_000_000).encode()),
            }
            assert len(pair) == 1, (prefix, app_key, pair)
    # Different apps are spread (the tag is the app, not a constant).
    spread = {
        key_slot(redis_keys.nonce("vasset:", f"app{i}", "n" * 16).encode()) for i in range(20)
    }
    assert len(spread) > 1
    # Every key stays under the prefix (tests and deployments isolate by it).
    for key in (
        redis_keys.slots_global("p:"),
        redis_keys.nonce("p:", "a", "n"),
        redis_keys.lock("p:", "janitor"),
        redis_keys.job_wakeup("p:"),
        redis_keys.console_login_failures("p:", "::1"),
        redis_keys.app_generation("p:"),
        redis_keys.events_channel("p:", 1),
    ):
        assert key.startswith("p:"), key


def test_nonce_batches_on_a_cluster(redis_cluster):
    """The cluster takes the pipeline path (a batch's keys span slots); answers stay the same."""

    async def run():
        client = RedisCluster.from_url(redis_cluster.url)
        try:
            await check_batching(client, f"vtest:nonce:{os.urandom(4).hex()}:")
        finally:
            await client.aclose()

    asyncio.run(run())


def test_the_cluster_agrees_with_the_key_layout(redis_cluster):
    client = redis_cluster.client()
    try:
        keys = [
            redis_keys.slots_global("vasset:"),
            redis_keys.slots_node("vasset:", "host-1"),
            redis_keys.slots_epoch("vasset:"),
        ]
        assert len({client.cluster_keyslot(k) for k in keys}) == 1
        assert client.eval("return #KEYS", len(keys), *keys) == len(keys)
        # The same script over keys of two slots is refused: the check above can fail.
        cross = [keys[0], redis_keys.nonce("vasset:", "ak", "n" * 16)]
        with pytest.raises((redis.exceptions.RedisClusterException, redis.ResponseError)):
            client.eval("return #KEYS", 2, *cross)
    finally:
        client.close()


# ---- the FFmpeg slots across a real Sentinel failover


def test_after_a_failover_new_slot_holders_wait_while_forgotten_ones_re_register(sentinel_set):
    """A slot the old master granted after the promotion is lost with it, yet its FFmpeg runs:
    the new master's replication id starts a new epoch, and nobody new gets a slot until the
    forgotten holder has had a lease to re-register."""
    prefix = f"vtest:slots:{os.urandom(4).hex()}:"
    lease = 2.0

    def semaphore(port: int) -> SlotSemaphore:
        client = redis.asyncio.Redis(port=port)
        return SlotSemaphore(client, prefix, "node", global_limit=1, node_limit=1, lease=lease)

    async def run() -> None:
        old = semaphore(sentinel_set.master_port())
        await old.redis.set(redis_keys.slots_epoch(prefix), 0)  # a new prefix: no FFmpeg anywhere
        assert await old.acquire("forgotten") == 1
        new = semaphore(await asyncio.to_thread(sentinel_set.failover))
        # The failover lost the grant (it reached the old master after the promotion).
        for key in (new.global_key, new.node_key):
            await new.redis.zrem(key, "forgotten")
        assert await new.acquire("newcomer") == -1, "a new holder got in beside a forgotten one"
        assert await new.renew("forgotten")  # its heartbeat re-registers it
        await asyncio.sleep(lease * 0.6)
        assert await new.renew("forgotten")
        await asyncio.sleep(lease * 0.6)
        # The epoch's lease is over: the newcomer now meets the re-registered holder's slot.
        assert await new.acquire("newcomer") == 0
        await new.release("forgotten")
        assert await new.acquire("newcomer") == 1
        assert await new.holders() == ["newcomer"]
        for sem in (old, new):
            await sem.redis.aclose()

    asyncio.run(run())
