"""A bare ASGI app answering every GET with one file through granian's zero-copy pathsend.

    BENCH_FILE=/path granian --interface asgi --factory bench.pathsend_app:make

The ceiling of zero-copy file responses on this server stack, for bench/streaming.py. vasset does
not use pathsend: granian 2.8 finishes the ASGI call (and reports ``http.disconnect``) as soon
as the path is handed over, so a stream cap could not count the stream while it is sent.
"""

from __future__ import annotations

import os
from typing import Any


def make() -> Any:
    """The app, serving the file named by BENCH_FILE."""
    path = os.environ["BENCH_FILE"]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        size = os.stat(path).st_size
        headers = [(b"content-length", str(size).encode()), (b"content-type", b"video/mp4")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": path})

    return app
