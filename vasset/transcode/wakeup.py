"""Waking an idle worker after an enqueue commits (a Redis list; workers also poll)."""

from __future__ import annotations

from redis.exceptions import RedisError

from vasset import redis_keys
from vasset.redis_client import REDIS_DOWN, AnyRedis
from vasset.settings import Settings


def notify_key(settings: Settings) -> str:
    """Redis list that wakes an idle worker when a job is enqueued (one key: one slot)."""
    return redis_keys.job_wakeup(settings.redis_prefix)


class JobWakeup:
    """Best-effort nudges to idle workers; losing one only delays a job by one poll."""

    def __init__(self, redis: AnyRedis, settings: Settings) -> None:
        self.redis = redis
        self.key = notify_key(settings)

    async def wake(self) -> None:
        """Wake one idle worker (best effort: workers also poll)."""
        try:
            await self.redis.lpush(self.key, b"1")
            await self.redis.ltrim(self.key, 0, 99)
        except (RedisError, *REDIS_DOWN):
            pass
