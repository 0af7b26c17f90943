"""Batched nonce spending: concurrent requests share a pipeline, replays still lose."""

from __future__ import annotations

import asyncio
import os

from tests.conftest import REDIS_URL
from vasset.auth.nonces import NonceBatcher
from vasset.redis_client import create_redis


def test_concurrent_spends_batch_and_duplicates_lose():
    prefix = f"vtest:nonce:{os.urandom(4).hex()}:"

    async def run():
        redis = create_redis(REDIS_URL)
        try:
            batcher = NonceBatcher(redis, nonce_ttl=30)
            keys = [f"{prefix}{i % 50}" for i in range(100)]  # every nonce twice
            results = await asyncio.gather(*(batcher.spend(k, prefix + "rate") for k in keys))
            fresh = [k for k, (ok, _) in zip(keys, results, strict=True) if ok]
            assert sorted(fresh) == sorted(set(keys)), "each nonce is fresh exactly once"
            calls = sorted(c for _, c in results)
            assert calls == list(range(1, 101)), "the rate counter saw every call once"
            again, _ = await batcher.spend(keys[0])
            assert again is False
            assert await redis.ttl(keys[0]) > 0
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
