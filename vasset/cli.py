"""The `vasset` command: serve, worker, run, db upgrade, apps, jobs, webhooks, janitor."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import msgspec

from vasset.events import cli as webhooks_cli
from vasset.logs import configure_logging
from vasset.readywatch import ReadyWatcher
from vasset.settings import Settings, SettingsError, load_settings
from vasset.tracing.setup import check_installed as check_tracing_installed


class CommandFailed(Exception):
    """A command cannot go on; its message is the one line the operator sees."""


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port.

    granian binds with SO_REUSEPORT, so a second server on a taken port would silently share it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return False


def _serve(
    settings: Settings, host: str, port: int, workers: int, share_port: bool = False
) -> None:
    from vasset.metrics.multiproc import prepare_multiprocess_dir, remove_multiprocess_dir

    if not share_port and port_in_use(host, port):
        raise CommandFailed(
            f"{host}:{port} is already in use (another vasset?); "
            "stop it, pick another --port, or pass --share-port to share it"
        )
    if "VASSET_PUBLIC_URL" not in os.environ:
        settings = msgspec.structs.replace(settings, public_url=f"http://{host}:{port}")
    print(f"vasset API listening on http://{host}:{port} ({workers} worker(s))", flush=True)
    # Several server processes: their metrics go to files that /metrics sums (set before the
    # workers start, so prometheus_client picks file-backed values in each of them).
    folder = prepare_multiprocess_dir(port) if workers > 1 else None
    try:
        _granian(settings, host, port, workers)
    finally:
        if folder is not None:
            remove_multiprocess_dir(*folder)


def _granian(settings: Settings, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    from vasset.entry import load_app

    Granian(
        "vasset.app:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_enabled=False,
        backlog=2048,
        # After SIGTERM, in-flight requests get this long before their worker is killed.
        workers_kill_timeout=max(1, math.ceil(settings.shutdown_grace)),
    ).serve(target_loader=partial(load_app, settings), wrap_loader=False)


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
    from vasset.redis_client import redis_from_settings

    engine = create_engine(settings.database_url, pool_size=1)
    redis = redis_from_settings(settings, pool_size=1)
    try:
        return await set_enabled(engine, app_key, enabled, redis, settings.redis_prefix)
    finally:
        await engine.dispose()
        await redis.aclose()


async def _apps_ttl(settings: Settings, app_key: str, seconds: int) -> bool:
    from vasset.apps.service import set_default_ttl
    from vasset.db import create_engine

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        return await set_default_ttl(engine, app_key, seconds)
    finally:
        await engine.dispose()


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


def _demo_console(settings: Settings, demo: dict, creds: Path) -> Settings:
    """Enable the console for the demo app unless the operator configured one."""
    if settings.console_key:
        return settings
    import secrets

    saved = json.loads(creds.read_text()) if creds.exists() else {}
    key = saved.get("console_key") or secrets.token_urlsafe(18)
    if creds.exists() and saved.get("console_key") != key:
        saved["console_key"] = key
        creds.write_text(json.dumps(saved, indent=2))
    return msgspec.structs.replace(
        settings, console_key=key, console_app_key=settings.console_app_key or demo["app_key"]
    )


def _run(settings: Settings, host: str, port: int) -> int:
    """Create the database, migrate, make a demo app, then run a worker and the API."""
    if port_in_use(host, port):
        raise CommandFailed(f"{host}:{port} is already in use (another vasset?)")
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
    settings = _demo_console(settings, demo, creds)
    # The whole of `run` stops within about ten seconds: the worker's drain is bounded by the
    # API's grace (its unfinished jobs go back to the queue for the next start).
    grace = min(settings.worker_shutdown_grace, settings.shutdown_grace)
    env = dict(
        os.environ,
        VASSET_PUBLIC_URL=os.environ.get("VASSET_PUBLIC_URL", f"http://{host}:{port}"),
        VASSET_WORKER_SHUTDOWN_GRACE=str(grace),
    )
    worker = subprocess.Popen([sys.executable, "-m", "vasset", "worker"], env=env)
    print(f"worker pid {worker.pid}", flush=True)
    if settings.console_key:
        print(
            f"console: http://{host}:{port}/console  (login key in var/demo-app.json)", flush=True
        )
    watcher = ReadyWatcher(host, port)
    watcher.start()
    try:
        _serve(settings, host, port, 1)
    finally:
        watcher.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=grace + 3)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from vasset.transcode.worker import run_worker

    return asyncio.run(run_worker(settings, args.metrics_port, args.metrics_host))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="vasset", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--share-port",
        action="store_true",
        help="start even if the port is taken (SO_REUSEPORT: share it with another vasset)",
    )
    run = sub.add_parser(
        "run", help="create the database, migrate, make a demo app, run API+worker"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    worker = sub.add_parser("worker", help="run a transcode worker (any number, on any host)")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of --metrics-port (127.0.0.1)"
    )
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
    ttl = apps_sub.add_parser("ttl", help="delete an app's new videos SECONDS after creation")
    ttl.add_argument("app_key")
    ttl.add_argument("seconds", type=int, help="the default ttl of its new videos; 0: none")
    jobs = sub.add_parser("jobs", help="inspect and requeue transcode jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    ls = jobs_sub.add_parser(
        "list", help="list jobs an operator should look at (failed, stuck, running, queued)"
    )
    ls.add_argument(
        "--state",
        default="open",
        choices=["open", "stuck", "failed", "queued", "running", "all"],
        help="open (default): failed, stuck, running and queued jobs; stuck: queued for over an"
        " hour or with an expired lease; all: also succeeded and cancelled ones",
    )
    ls.add_argument("--json", action="store_true")
    rq = jobs_sub.add_parser("requeue", help="requeue jobs by id, or every failed/stuck job")
    rq.add_argument("ids", nargs="*", type=int)
    rq.add_argument("--failed", action="store_true")
    rq.add_argument("--stuck", action="store_true")
    webhooks_cli.add_parser(sub)
    sub.add_parser("janitor", help="run one janitor pass now")
    return parser


def _cause(exc: BaseException) -> str:
    """One line naming what went wrong (a driver error's own message, not a traceback)."""
    if "sqlalchemy.exc" not in sys.modules:
        return str(exc) or type(exc).__name__
    from sqlalchemy.exc import DBAPIError

    found: BaseException | None = exc
    while found is not None and not isinstance(found, DBAPIError):
        found = found.__cause__  # a 503 ServiceUnavailable wraps the driver's error
    if isinstance(found, DBAPIError):
        orig = found.orig
        return f"database error: {orig.args[-1] if orig is not None and orig.args else found}"
    return str(exc) or type(exc).__name__


#: Failures answered in one line, by (module, class): looked up only once a command failed, so
#: `vasset serve`'s supervisor never imports SQLAlchemy or redis just to name their errors.
_ONE_LINE = (
    ("sqlalchemy.exc", "SQLAlchemyError"),
    ("redis.exceptions", "RedisError"),
    ("vasset.db", "MigrationsMissing"),
    ("vasset.errors", "VassetError"),
)


def _one_line(exc: BaseException) -> bool:
    """Whether a failure is one the commands report in one line (not a bug's traceback)."""
    kinds: list[type] = [CommandFailed, SettingsError, OSError]
    for module, name in _ONE_LINE:
        loaded = sys.modules.get(module)
        if loaded is not None:
            kinds.append(getattr(loaded, name))
    return isinstance(exc, tuple(kinds))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vasset` console script: one line and exit 1 when a command fails."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except Exception as exc:
        if not _one_line(exc):
            raise
        print(f"vasset {args.command}: {_cause(exc)}", file=sys.stderr, flush=True)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    settings = load_settings()
    # Tracing asked for without its packages: refuse in one line, before anything starts.
    check_tracing_installed(settings)
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "serve":
        _serve(settings, args.host, args.port, args.workers, args.share_port)
        return 0
    if args.command == "run":
        return _run(settings, args.host, args.port)
    if args.command == "worker":
        return _worker(settings, args)
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
        if args.apps_command == "ttl":
            ok = asyncio.run(_apps_ttl(settings, args.app_key, args.seconds))
        else:
            ok = asyncio.run(_apps_set(settings, args.app_key, args.apps_command == "enable"))
        print("ok" if ok else "no such app_key")
        return 0 if ok else 1
    if args.command == "jobs":
        from vasset.transcode.admin import jobs_command

        return asyncio.run(jobs_command(settings, args))
    if args.command == "webhooks":
        return asyncio.run(webhooks_cli.webhooks_command(settings, args))
    if args.command == "janitor":
        from vasset.janitor import run_once

        print(json.dumps(asyncio.run(run_once(settings))))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
