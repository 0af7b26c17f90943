"""Presigned part URLs of a direct-to-storage upload: fetched in batches, renewed before expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from vasset_client import errors
from vasset_client.client import Client
from vasset_client.models import PartUrl

__all__ = ["PartUrls"]

#: A URL this close to expiry is fetched again rather than risk a refused PUT.
MIN_LIFETIME = 60
#: The API hands out at most this many URLs per call.
BATCH = 1000


class PartUrls:
    """The part URLs of one upload, shared by the threads that send its parts."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._urls: dict[int, PartUrl] = {}
        self._lock = threading.Lock()

    def reset(self, urls: Iterable[PartUrl]) -> None:
        """Start from the URLs an init answer carried."""
        with self._lock:
            self._urls = {u.pseq: u for u in urls}

    @staticmethod
    def _fresh(url: PartUrl | None) -> bool:
        return url is not None and (
            url.expires_at is None or url.expires_at - time.time() > MIN_LIFETIME
        )

    def _fetch(self, upid: str, pseqs: list[int]) -> None:
        for i in range(0, len(pseqs), BATCH):
            answer = self.client.direct_part_urls(upid, pseqs[i : i + BATCH])
            self._urls.update({u.pseq: u for u in answer.part_urls})

    def prefetch(self, upid: str, pseqs: list[int]) -> None:
        """Fetch URLs for every listed part without a fresh one."""
        with self._lock:
            self._fetch(upid, [p for p in pseqs if not self._fresh(self._urls.get(p))])

    def url_for(self, upid: str, pseq: int, force: bool = False) -> PartUrl:
        """The part's URL, fetched again when missing, about to expire or refused (force)."""
        with self._lock:
            if force or not self._fresh(self._urls.get(pseq)):
                self._fetch(upid, [pseq])
            url = self._urls.get(pseq)
        if url is None:
            raise errors.VassetError(f"the server gave no URL for part {pseq}")
        return url
