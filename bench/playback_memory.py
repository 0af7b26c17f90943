"""Playback memory bench: the API's RSS while many slow clients read one file over /play.

    python bench/playback_memory.py [--readers 200] [--file-mib 13] [--hold 15]

Every reader opens a raw socket (small receive buffer), sends one GET, reads a few KiB, then
sleeps; RSS of the server's process tree is sampled before, at its peak while they hold the
streams, and a few seconds after they all closed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RssSampler, ServerProcess, bench_env, drop_database, tree_rss
from tests.support.server import stalled_reader


def signed_path(env: dict[str, str], key: str, lifetime: int = 3600) -> str:
    """A /play path for key, signed with the deployment's URL secret."""
    from vasset.db import create_engine
    from vasset.playback.secret import url_secret
    from vasset.playback.urls import play_path

    async def secret() -> bytes:
        engine = create_engine(env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            return await url_secret(engine)
        finally:
            await engine.dispose()

    return play_path(asyncio.run(secret()), key, int(time.time()) + lifetime)


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--file-mib", type=int, default=13)
    parser.add_argument("--hold", type=float, default=15)
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vasset-playmem-"))
    env = bench_env(tmp, VASSET_MAX_CONCURRENT_STREAMS=str(args.readers + 10))
    server = ServerProcess(env).start()
    assert server.proc is not None
    try:
        key = "media/1/1-memfile/720p.mp4"
        obj = tmp / "storage" / "objects" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(os.urandom(args.file_mib << 20))
        path = signed_path(env, key)
        # warm up: one full read, so lazy imports and pools are not counted as growth
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while s.recv(1 << 20):
                pass
        time.sleep(1)
        before = tree_rss(server.proc.pid)
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        readers = [stalled_reader(server.port, path)[0] for _ in range(args.readers)]
        deadline = time.monotonic() + args.hold
        while time.monotonic() < deadline:
            for s in readers:  # trickle: a few KiB per reader per second
                s.recv(4096)
            time.sleep(1)
        peak = sampler.stop()
        for s in readers:
            s.close()
        time.sleep(5)
        after = tree_rss(server.proc.pid)
        mib = 1 << 20
        print(f"readers={args.readers} file={args.file_mib} MiB hold={args.hold:.0f}s")
        print(f"RSS before: {before / mib:.0f} MiB")
        print(f"RSS peak:   {peak / mib:.0f} MiB (+{(peak - before) / mib:.0f})")
        print(f"RSS after:  {after / mib:.0f} MiB (+{(after - before) / mib:.0f})")
    finally:
        server.stop()
        drop_database(env)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
