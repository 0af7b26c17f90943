"""The per-process wiring: connections, stores and every service, built once from Settings.

Handlers get the Context as a Litestar dependency (vasset/http/deps.py); workers and admin
commands build their own. Nothing is created lazily by whichever request comes first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from vasset.auth.verify import Authenticator
from vasset.captions.service import CaptionService
from vasset.console.gate import ConsoleGate
from vasset.db import create_engine
from vasset.events import notify
from vasset.events.endpoints import WebhookService
from vasset.events.hub import Hub
from vasset.playback.service import PlaybackService
from vasset.playback.stream import StreamLimiter
from vasset.redis_client import AnyRedis, redis_from_settings
from vasset.settings import Settings
from vasset.storage.base import BlobStore
from vasset.storage.factory import open_store
from vasset.tracing.setup import Tracing, configure_tracing
from vasset.transcode import hooks
from vasset.transcode.requests import TranscodeRequests
from vasset.transcode.wakeup import JobWakeup
from vasset.upload.resumable.service import Resumable
from vasset.upload.resumable.tickets import Tickets
from vasset.upload.service import UploadService
from vasset.videos.service import VideoService

if TYPE_CHECKING:
    from vasset.upload.direct import DirectUploads  # imports oss2: only on OSS deployments


@dataclass(kw_only=True, eq=False)
class Context:
    """Everything a request or a worker needs, passed in explicitly."""

    settings: Settings
    engine: AsyncEngine
    redis: AnyRedis
    store: BlobStore
    auth: Authenticator
    uploads: UploadService
    videos: VideoService
    wakeup: JobWakeup
    streams: StreamLimiter
    console: ConsoleGate
    #: Direct-to-OSS uploads; None on local-disk storage.
    direct: DirectUploads | None = None
    #: OpenTelemetry tracing; None when it is off (VASSET_OTEL_ENDPOINT empty).
    tracing: Tracing | None = None
    # Services that take the whole Context: set by build_context right after the fields above.
    playback: PlaybackService = field(init=False)
    captions: CaptionService = field(init=False)
    transcodes: TranscodeRequests = field(init=False)
    tickets: Tickets = field(init=False)
    resumable: Resumable = field(init=False)
    webhooks: WebhookService = field(init=False)
    #: Live event streams' one Redis pub/sub connection (opened with the first stream).
    hub: Hub = field(init=False)


def build_context(settings: Settings, tracing: Tracing | None = None) -> Context:
    """Create connections and services (nothing is contacted until first use).

    Tracing comes from settings unless handed in (the app's plugin and its Context share one).
    """
    tracing = tracing or configure_tracing(settings)
    engine = create_engine(settings.database_url, settings.db_pool_size, settings.db_pool_overflow)
    redis = redis_from_settings(settings)
    raw_store = store = open_store(settings)
    if tracing is not None:
        tracing.instrument_engine(engine)
        tracing.instrument_redis(redis)
        store = tracing.wrap_store(store)
    # Committed events wake the live streams of their apps (any process that writes them).
    notify.install(engine, redis, settings.redis_prefix)
    auth = Authenticator(engine, redis, settings)
    wakeup = JobWakeup(redis, settings)
    uploads = UploadService(engine, store, settings, hooks.enqueue_on_upload(settings))
    uploads.after_enqueue = wakeup.wake
    ctx = Context(
        settings=settings,
        engine=engine,
        redis=redis,
        store=store,
        auth=auth,
        uploads=uploads,
        videos=VideoService(engine, store, hooks.cancel_video_jobs),
        wakeup=wakeup,
        streams=StreamLimiter.from_settings(settings, redis, engine),
        console=ConsoleGate(settings, engine, auth),
        tracing=tracing,
    )
    ctx.playback = PlaybackService(ctx)
    ctx.captions = CaptionService(ctx)
    ctx.transcodes = TranscodeRequests(ctx)
    ctx.tickets = Tickets(engine, settings)
    ctx.resumable = Resumable(uploads, ctx.videos, settings)
    ctx.webhooks = WebhookService(engine, settings)
    ctx.hub = Hub(settings)
    if settings.storage_is_oss:
        from vasset.storage.oss import OssBlobStore
        from vasset.upload.direct import DirectUploads

        assert isinstance(raw_store, OssBlobStore)
        ctx.direct = DirectUploads(uploads, raw_store, settings)
    return ctx


async def close_context(ctx: Context) -> None:
    """Release every connection and pool."""
    ctx.hub.stop()
    await asyncio.gather(
        ctx.engine.dispose(), ctx.redis.aclose(), ctx.store.close(), return_exceptions=True
    )
    if ctx.tracing is not None:
        # Spans of the last moments leave now, not at exit (a SIGKILL after this loses none).
        await asyncio.to_thread(ctx.tracing.flush)
