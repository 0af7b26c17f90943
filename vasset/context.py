"""The per-process wiring: connections, stores and services, built once from Settings."""

from __future__ import annotations

import asyncio

import msgspec
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.auth.verify import Authenticator
from vasset.db import create_engine
from vasset.redis_client import create_redis
from vasset.settings import Settings
from vasset.storage.base import BlobStore
from vasset.storage.factory import open_store
from vasset.upload.service import UploadService
from vasset.videos.service import VideoService


class Context(msgspec.Struct, kw_only=True):
    """Everything a request or a worker needs, passed in explicitly."""

    settings: Settings
    engine: AsyncEngine
    redis: Redis
    store: BlobStore
    auth: Authenticator
    uploads: UploadService
    videos: VideoService
    extras: dict = msgspec.field(default_factory=dict)


def build_context(settings: Settings) -> Context:
    """Create connections and services (nothing is contacted until first use)."""
    from vasset.transcode import hooks

    engine = create_engine(settings.database_url, settings.db_pool_size, settings.db_pool_overflow)
    redis = create_redis(settings.redis_url, settings.redis_pool_size, settings.redis_pool_timeout)
    store = open_store(settings)
    ctx = Context(
        settings=settings,
        engine=engine,
        redis=redis,
        store=store,
        auth=Authenticator(engine, redis, settings),
        uploads=UploadService(engine, store, settings, hooks.enqueue_on_upload(settings)),
        videos=VideoService(engine, store, hooks.cancel_video_jobs),
    )
    ctx.uploads.after_enqueue = hooks.notifier(ctx)
    if settings.storage_is_oss:
        from vasset.storage.oss import OssBlobStore
        from vasset.upload.direct import DirectUploads

        assert isinstance(store, OssBlobStore)
        ctx.extras["direct_uploads"] = DirectUploads(ctx.uploads, store, settings)
    return ctx


async def close_context(ctx: Context) -> None:
    """Release every connection and pool."""
    await asyncio.gather(
        ctx.engine.dispose(), ctx.redis.aclose(), ctx.store.close(), return_exceptions=True
    )
