"""Batched nonce spending: concurrent requests share a pipeline, replays still lose."""

from __future__ import annotations

import asyncio
import os

from tests.conftest import REDIS_URL
from vasset.auth.nonces import NonceBatcher
from vasset.redis_client import create_redis


async def check_batching(redis, prefix: str) -> None:
    """Duplicates lose, every call is counted, the watched key rides along (any Redis mode)."""
    watch = prefix + "{w}:generation"
    await redis.set(watch, b"gen-1")
    batcher = NonceBatcher(redis, nonce_ttl=30, watch_key=watch)
    # {tag}: on a cluster a nonce and its rate window share a slot, as redis_keys lays them out
    keys = [f"{prefix}{{t{i % 5}}}:n{i % 50}" for i in range(100)]  # every nonce twice
    rates = [f"{prefix}{{t{i % 5}}}:rate" for i in range(100)]
    spends = [batcher.spend_and_watch(k, r) for k, r in zip(keys, rates, strict=True)]
    results = await asyncio.gather(batcher.watched(), *spends)
    assert results[0] == b"gen-1"
    fresh = [k for k, (ok, _, _) in zip(keys, results[1:], strict=True) if ok]
    assert sorted(fresh) == sorted(set(keys)), "each nonce is fresh exactly once"
    calls = sorted(c for _, c, _ in results[1:])
    assert calls == sorted(list(range(1, 21)) * 5), "each rate window saw its calls once"
    assert {w for _, _, w in results[1:]} == {b"gen-1"}
    again, calls = await batcher.spend(keys[0])
    assert again is False and calls == 0
    assert await redis.ttl(keys[0]) > 0
    assert 0 < await redis.ttl(rates[0]) <= 2
    await redis.delete(watch)
    assert await batcher.watched() is None
    assert batcher.seen is None


def test_concurrent_spends_batch_and_duplicates_lose():
    async def run():
        redis = create_redis(REDIS_URL)
        try:
            await check_batching(redis, f"vtest:nonce:{os.urandom(4).hex()}:")
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_redis_errors_reach_every_waiter():
    async def run():
        redis = create_redis("redis://127.0.0.1:1/0")
        try:
            batcher = NonceBatcher(redis, nonce_ttl=30)
            results = await asyncio.gather(
                *(batcher.spend(f"k{i}") for i in range(3)), return_exceptions=True
            )
            assert all(isinstance(r, Exception) for r in results)
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_lone_request_is_answered():
    async def run():
        redis = create_redis(REDIS_URL)
        try:
            ok, calls = await NonceBatcher(redis, 5).spend(f"vtest:lone:{os.urandom(6).hex()}")
            assert ok and calls == 0
        finally:
            await redis.aclose()

    asyncio.run(run())
