"""Liveness (/health: the process answers) and readiness (/ready: it can do its work).

/ready checks what a request needs: MySQL, Redis, storage, a schema with every migration
applied, and room on the local storage disk. Each check has its own short timeout, so a hung
dependency makes /ready answer 503 naming it instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec

from vasset import db
from vasset.http.deps import Ctx
from vasset.http.openapi import PUBLIC, doc
from vasset.http.responses import JSON
from vasset.http.schemas import Answer, Health

#: Seconds one readiness check may take before it counts as failed.
CHECK_TIMEOUT = 2.0
OK = "ok"
#: Key of the object an OSS reachability check asks about (it need not exist).
PROBE_KEY = "ready-probe"


class Readiness(Answer):
    """Answer of GET /ready (200 when ready, else 503)."""

    ready: bool
    checks: Annotated[
        dict[str, str],
        msgspec.Meta(
            description='check name (database, migrations, redis, storage, disk) -> "ok" or'
            " what is wrong"
        ),
    ]


@get("/health", sync_to_thread=False, **doc(tag="service", auth=PUBLIC, example={"ok": True}))
def health() -> Health:
    """Liveness: the process answers (it touches nothing else)."""
    return Health(ok=True)


async def _database(ctx: Ctx) -> str:
    await db.ping(ctx.engine)
    return OK


async def _migrations(ctx: Ctx) -> str:
    pending = await db.pending_migrations(ctx.engine)
    if pending:
        return f"behind: {len(pending)} migration(s) not applied ({', '.join(pending[:5])});" + (
            " run `vasset db upgrade`"
        )
    return OK


async def _redis(ctx: Ctx) -> str:
    await ctx.redis.ping()
    return OK


def _local_root(ctx: Ctx) -> Path | None:
    root = getattr(ctx.store, "root", None)
    return root if isinstance(root, Path) else None


async def _storage(ctx: Ctx) -> str:
    root = _local_root(ctx)
    if root is None:
        await ctx.store.head(PROBE_KEY)  # one cheap request: the bucket answers
        return OK
    usable = await asyncio.to_thread(lambda: root.is_dir() and os.access(root, os.W_OK | os.X_OK))
    return OK if usable else f"{root} is missing or not writable"


async def _disk(ctx: Ctx) -> str:
    root = _local_root(ctx)
    if root is None:
        return OK  # OSS: no disk of ours fills up
    usage = await asyncio.to_thread(shutil.disk_usage, root)
    free = 100.0 * usage.free / usage.total if usage.total else 0.0
    wanted = ctx.settings.ready_min_free_percent
    if free < wanted:
        return f"{free:.1f}% free on {root}, below VASSET_READY_MIN_FREE_PERCENT={wanted:g}"
    return OK


CHECKS: dict[str, Callable[[Ctx], Awaitable[str]]] = {
    "database": _database,
    "migrations": _migrations,
    "redis": _redis,
    "storage": _storage,
    "disk": _disk,
}


async def _bounded(check: Callable[[Ctx], Awaitable[str]], ctx: Ctx) -> str:
    try:
        return await asyncio.wait_for(check(ctx), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


async def readiness(ctx: Ctx) -> Readiness:
    """Run every check at once; ready when all of them answer ok."""
    results = await asyncio.gather(*(_bounded(check, ctx) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    return Readiness(ready=all(r == OK for r in results), checks=checks)


_READY_DOC = doc(
    tag="service",
    auth=PUBLIC,
    example={
        "ready": True,
        "checks": {"database": OK, "migrations": OK, "redis": OK, "storage": OK, "disk": OK},
    },
)
_READY_DOC["responses"] = {
    **_READY_DOC["responses"],
    503: ResponseSpec(
        data_container=Readiness,
        media_type=JSON,
        generate_examples=False,
        description="Not ready: checks names what failed",
    ),
}


@get("/ready", **_READY_DOC)
async def ready(ctx: Ctx) -> Response[Readiness]:
    """Readiness: MySQL, Redis and storage answer, migrations are current, the disk has room."""
    answer = await readiness(ctx)
    return Response(answer, status_code=200 if answer.ready else 503, media_type=JSON)


ROUTES = [health, ready]
