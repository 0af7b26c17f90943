"""One attempt of a leased job: its temp dir, output prefix, progress and cancel signal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vasset.storage import keys

if TYPE_CHECKING:
    from vasset.context import Context
    from vasset.transcode.progressive import Publisher
    from vasset.transcode.queue import Job


class LeaseLost(Exception):
    """The job's fencing token changed: another worker, a cancel, or a retranscode owns it."""


class JobRun:
    """State of one attempt: its temp dir, output prefix, progress and cancel signal."""

    def __init__(self, ctx: Context, job: Job, cancel: asyncio.Event) -> None:
        self.ctx = ctx
        self.job = job
        self.cancel = cancel
        self.progress = 0
        # When the attempt last showed it was moving (the worker's watchdog reads it).
        self.active_at = time.monotonic()
        # Set when the attempt stopped because its FFmpeg slot went to another holder.
        self.slot_lost = False
        self.workdir = Path(ctx.settings.temp_dir) / f"job-{job.id}-{job.lease_token}"
        self.prefix = keys.output_prefix(job.video_id, job.lease_token, keys.new_nonce())
        self.uploaded: list[str] = []
        # Publishes HLS while FFmpeg writes it (None: the ladder is published whole at the end).
        self.publisher: Publisher | None = None

    def set_progress(self, value: float) -> None:
        """Record 0-100 progress (written to MySQL by the heartbeat)."""
        self.progress = max(self.progress, min(99, int(value)))
        self.active_at = time.monotonic()

    def check(self) -> None:
        """Stop early once the lease is gone (a step boundary: the attempt is moving)."""
        self.active_at = time.monotonic()
        if self.cancel.is_set():
            raise LeaseLost()
