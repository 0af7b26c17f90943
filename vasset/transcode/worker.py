"""The transcode worker process (placeholder loop until the media pipeline lands)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from vasset.settings import Settings

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker_started")
    await stop.wait()
    log.info("worker_stopped")
    return 0
