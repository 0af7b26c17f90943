"""One writer per part in this process: later writers wait on the event loop, not on a thread.

Storage also refuses a second writer of the same part across processes (local: a flock taken
without waiting; OSS keeps the last complete part), but inside one process the second writer
should simply wait for the first and then find the part stored. Waiting holds no thread, so a
storm of writers of one part cannot starve the storage pool that the first writer needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from vasset import errors

#: How long a writer waits for another writer of the same part before answering 409.
PART_WAIT = 15.0


class PartLocks:
    """Per-(upload, part) mutual exclusion on the event loop, with a bounded wait."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], asyncio.Event] = {}

    @asynccontextmanager
    async def hold(self, upload_id: str, pseq: int, wait: float = PART_WAIT) -> AsyncIterator[None]:
        """Be the only writer of the part in this process, or raise UploadInProgress."""
        key = (upload_id, pseq)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (released := self._held.get(key)) is not None:
            left = deadline - loop.time()
            try:
                # Event.wait is safe to cancel (unlike Lock.acquire under a timeout in 3.11).
                await asyncio.wait_for(released.wait(), max(left, 0))
            except TimeoutError:
                raise errors.UploadInProgress(
                    f"part {pseq} is being stored by another request; retry shortly", pseq=pseq
                ) from None
        self._held[key] = asyncio.Event()
        try:
            yield
        finally:
            self._held.pop(key).set()
