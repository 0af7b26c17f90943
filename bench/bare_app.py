"""A bare Litestar JSON endpoint: the baseline of bench/playback.py."""

from litestar import Litestar, get


@get("/bare")
async def bare() -> dict:
    """A tiny JSON answer."""
    return {"vid": 1, "status": "playable", "play_urls": [{"url": "http://x/y", "size": 1}]}


def make() -> Litestar:
    """Factory for granian."""
    return Litestar([bare], openapi_config=None)
