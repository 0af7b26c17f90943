"""`vasset jobs`: list stuck or failed jobs and requeue them."""

from __future__ import annotations

import json
import time

from vasset.context import build_context, close_context
from vasset.db import transaction
from vasset.settings import Settings
from vasset.transcode import queue


async def jobs_command(settings: Settings, args) -> int:
    """Run `vasset jobs list|requeue`."""
    ctx = build_context(settings)
    try:
        if args.jobs_command == "list":
            async with transaction(ctx.engine) as conn:
                jobs = await queue.list_jobs(conn, args.state, stuck_after=3600)
            rows = [
                {
                    "id": j.id,
                    "vid": j.video_id,
                    "kind": j.kind,
                    "state": j.state,
                    "priority": j.priority,
                    "attempts": j.attempts,
                    "error": j.error,
                    "lease_expired": bool(j.lease_until and j.lease_until < time.time()),
                    "worker": j.worker,
                }
                for j in jobs
            ]
            if args.json:
                print(json.dumps(rows))
            else:
                for r in rows:
                    print(
                        f"{r['id']:>8} vid={r['vid']} {r['kind']:<11} {r['state']:<9}"
                        f" prio={r['priority']} attempts={r['attempts']} {r['error'] or ''}"
                    )
            return 0
        ids = list(args.ids)
        async with transaction(ctx.engine) as conn:
            if args.failed:
                ids += [j.id for j in await queue.list_jobs(conn, "failed", 3600)]
            if args.stuck:
                ids += [j.id for j in await queue.list_jobs(conn, "stuck", 3600)]
            done = [job_id for job_id in dict.fromkeys(ids) if await queue.requeue(conn, job_id)]
        from vasset.transcode.worker import notify

        await notify(ctx)
        print(json.dumps({"requeued": done}))
        return 0
    finally:
        await close_context(ctx)
