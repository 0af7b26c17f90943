"""`vasset webhooks`: an operator's view of any app's webhook endpoints and deliveries."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vasset.settings import Settings


def add_parser(sub: Any) -> None:
    """Add `webhooks` and its subcommands to the `vasset` parser."""
    hooks = sub.add_parser("webhooks", help="manage apps' webhook endpoints and deliveries")
    verbs = hooks.add_subparsers(dest="webhooks_command", required=True)
    create = verbs.add_parser("create", help="register an endpoint; prints its secret (once)")
    create.add_argument("app_key")
    create.add_argument("url")
    create.add_argument("--events", default="*", help="comma list of event types, or * (all)")
    ls = verbs.add_parser("list", help="an app's endpoints (no secrets)")
    ls.add_argument("app_key")
    delete = verbs.add_parser("delete", help="delete an endpoint")
    delete.add_argument("id", type=int)
    rotate = verbs.add_parser("rotate", help="new secret; the old one signs for the overlap")
    rotate.add_argument("id", type=int)
    deliveries = verbs.add_parser("deliveries", help="an endpoint's deliveries, newest first")
    deliveries.add_argument("endpoint_id", type=int)
    deliveries.add_argument("--status", choices=["pending", "succeeded", "failed"])
    deliveries.add_argument("--limit", type=int, default=100)
    retry = verbs.add_parser("retry", help="send a failed or pending delivery again now")
    retry.add_argument("delivery_id", type=int)
    for cmd in (create, ls, delete, rotate, deliveries, retry):
        cmd.add_argument("--json", action="store_true", help="print JSON")


def _line(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in row.items() if v is not None)


async def webhooks_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run `vasset webhooks ...`; prints JSON with --json, else one line per item."""
    from vasset.db import create_engine
    from vasset.events.endpoints import WebhookService

    engine = create_engine(settings.database_url, pool_size=1)
    service = WebhookService(engine, settings)
    verb = args.webhooks_command
    try:
        out: Any
        if verb == "create":
            app_id = await service.app_id(args.app_key)
            out = await service.create(app_id, args.url, args.events)
        elif verb == "list":
            out = await service.endpoints(await service.app_id(args.app_key))
        elif verb == "delete":
            out = await service.delete(None, args.id)
        elif verb == "rotate":
            out = await service.rotate(None, args.id)
        elif verb == "deliveries":
            limit = max(1, min(args.limit, 500))
            page = await service.deliveries(None, args.endpoint_id, args.status, None, limit)
            out = page["deliveries"]
        else:
            out = await service.retry(None, args.delivery_id)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps(out))
    elif isinstance(out, list):
        for row in out:
            print(_line(row))
    else:
        print(_line(out))
    return 0
