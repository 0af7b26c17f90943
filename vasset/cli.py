"""The `vasset` command: serve, worker, run, db upgrade, apps, jobs, janitor."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from vasset.logs import configure_logging
from vasset.settings import Settings, load_settings


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ.setdefault("VASSET_PUBLIC_URL", f"http://{host}:{port}")
    Granian(
        "vasset.app:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_enabled=False,
        backlog=2048,
    ).serve()


async def _upgrade(settings: Settings) -> list[str]:
    from vasset.db import create_engine, ensure_database, upgrade

    await ensure_database(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        return await upgrade(engine)
    finally:
        await engine.dispose()


async def _apps_create(settings: Settings, name: str) -> dict:
    from vasset.apps.service import create_app_keys
    from vasset.db import create_engine

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        return await create_app_keys(engine, name)
    finally:
        await engine.dispose()


async def _apps_set(settings: Settings, app_key: str, enabled: bool) -> bool:
    from vasset.apps.service import set_enabled
    from vasset.db import create_engine
    from vasset.redis_client import create_redis

    engine = create_engine(settings.database_url, pool_size=1)
    redis = create_redis(settings.redis_url, pool_size=1)
    try:
        return await set_enabled(engine, app_key, enabled, redis, settings.redis_prefix)
    finally:
        await engine.dispose()
        await redis.aclose()


async def _demo_app(settings: Settings) -> tuple[dict, bool]:
    from vasset.apps.service import create_app_keys, find_app_by_name
    from vasset.db import create_engine

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        found = await find_app_by_name(engine, "demo")
        if found:
            return found, False
        return await create_app_keys(engine, "demo"), True
    finally:
        await engine.dispose()


def _demo_console(settings: Settings, demo: dict, creds: Path) -> str:
    """Enable the console for the demo app unless the operator configured one."""
    if settings.console_key:
        return settings.console_key
    import secrets

    saved = json.loads(creds.read_text()) if creds.exists() else {}
    key = saved.get("console_key") or secrets.token_urlsafe(18)
    if creds.exists() and saved.get("console_key") != key:
        saved["console_key"] = key
        creds.write_text(json.dumps(saved, indent=2))
    os.environ["VASSET_CONSOLE_KEY"] = key
    os.environ.setdefault("VASSET_CONSOLE_APP_KEY", demo["app_key"])
    return key


def _run(settings: Settings, host: str, port: int) -> int:
    """Create the database, migrate, make a demo app, then run a worker and the API."""
    applied = asyncio.run(_upgrade(settings))
    print(f"schema ready ({len(applied)} migrations applied now)", flush=True)
    demo, created = asyncio.run(_demo_app(settings))
    creds = Path("var/demo-app.json")
    if created:
        creds.parent.mkdir(parents=True, exist_ok=True)
        creds.write_text(json.dumps(demo, indent=2))
        creds.chmod(0o600)
        print("demo app created; its credentials (also in var/demo-app.json):", flush=True)
        print(f"  app_key={demo['app_key']}\n  app_secret={demo['app_secret']}", flush=True)
    else:
        print(f"demo app: app_key={demo['app_key']} (secret in var/demo-app.json)", flush=True)
    console_key = _demo_console(settings, demo, creds)
    env = dict(
        os.environ, VASSET_PUBLIC_URL=os.environ.get("VASSET_PUBLIC_URL", f"http://{host}:{port}")
    )
    worker = subprocess.Popen([sys.executable, "-m", "vasset", "worker"], env=env)
    print(f"API on http://{host}:{port}, worker pid {worker.pid}", flush=True)
    if console_key:
        print(
            f"console: http://{host}:{port}/console  (login key in var/demo-app.json)", flush=True
        )
    try:
        _serve(settings, host, port, 1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=settings.worker_shutdown_grace + 5)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def _worker(settings: Settings) -> int:
    from vasset.transcode.worker import run_worker

    return asyncio.run(run_worker(settings))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="vasset", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    run = sub.add_parser(
        "run", help="create the database, migrate, make a demo app, run API+worker"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    sub.add_parser("worker", help="run a transcode worker (any number, on any host)")
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create the database if missing and apply sql/ migrations")
    apps = sub.add_parser("apps", help="manage apps and their keys")
    apps_sub = apps.add_subparsers(dest="apps_command", required=True)
    create = apps_sub.add_parser("create", help="create an app and print its key and secret")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    for verb in ("disable", "enable"):
        cmd = apps_sub.add_parser(verb, help=f"{verb} an app key")
        cmd.add_argument("app_key")
    jobs = sub.add_parser("jobs", help="inspect and requeue transcode jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    ls = jobs_sub.add_parser("list", help="list stuck or failed jobs")
    ls.add_argument("--state", default="stuck", help="stuck, failed, queued, running or all")
    ls.add_argument("--json", action="store_true")
    rq = jobs_sub.add_parser("requeue", help="requeue jobs by id, or every failed/stuck job")
    rq.add_argument("ids", nargs="*", type=int)
    rq.add_argument("--failed", action="store_true")
    rq.add_argument("--stuck", action="store_true")
    sub.add_parser("janitor", help="run one janitor pass now")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vasset` console script."""
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "serve":
        _serve(settings, args.host, args.port, args.workers)
        return 0
    if args.command == "run":
        return _run(settings, args.host, args.port)
    if args.command == "worker":
        return _worker(settings)
    if args.command == "db":
        applied = asyncio.run(_upgrade(settings))
        print(json.dumps({"applied": applied}))
        return 0
    if args.command == "apps":
        if args.apps_command == "create":
            app = asyncio.run(_apps_create(settings, args.name))
            if args.json:
                print(json.dumps(app))
            else:
                print(f"app_key={app['app_key']}\napp_secret={app['app_secret']}")
            return 0
        ok = asyncio.run(_apps_set(settings, args.app_key, args.apps_command == "enable"))
        print("ok" if ok else "no such app_key")
        return 0 if ok else 1
    if args.command == "jobs":
        from vasset.transcode.admin import jobs_command

        return asyncio.run(jobs_command(settings, args))
    if args.command == "janitor":
        from vasset.janitor import run_once

        print(json.dumps(asyncio.run(run_once(settings))))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
