"""What a server worker process loads: the ASGI app, imported only there.

`vasset serve`'s supervising process hands this function to granian and never imports the app
itself, so the supervisor stays small (litestar, SQLAlchemy and the services live only in the
workers that use them).
"""

from __future__ import annotations

from typing import Any

from vasset.settings import Settings


def load_app(settings: Settings) -> Any:
    """Build the served ASGI app in the worker that calls it."""
    from vasset.app import asgi_app

    return asgi_app(settings)
