"""Playback bench: playurl req/s vs a bare Litestar endpoint, and /play streaming vs nginx.

    python bench/playback.py [--seconds 10] [--connections 32] [--file-mib 1024] [--rounds 3]
                             [--skip-stream] [--stream-rounds 5] [--cold-rounds 2]

Both HTTP servers run under granian with one worker on 127.0.0.1; the load generator is one
asyncio process with keep-alive connections and pre-signed request lines (a fresh nonce each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, ServerProcess, app_of, bench_env, drop_database
from bench.streaming import compare
from tests.support.api import signed_query
from tests.support.db import sql


async def _client(port: int, lines: list[bytes], deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < deadline and i < len(lines):
            writer.write(lines[i])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            status = int(head.split(b" ", 2)[1])
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            counts[0] += 1
    finally:
        writer.close()


def load(port: int, make_line, connections: int, seconds: float) -> float:
    """Requests per second over `seconds` with `connections` keep-alive connections."""
    per_conn = 200_000
    lines = [
        [make_line() for _ in range(min(per_conn, int(seconds * 3000 / connections) + 50))]
        for _ in range(connections)
    ]
    counts = [0]

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(port, lines[c], deadline, counts) for c in range(connections))
        )

    t0 = time.perf_counter()
    asyncio.run(main())
    return counts[0] / (time.perf_counter() - t0)


def playurl_rounds(play_port: int, bare_port: int, play_line, bare_line, args) -> None:
    """Interleaved rounds (bare, playurl, bare, playurl ...): each ratio uses its own round."""
    ratios = []
    for n in range(1, args.rounds + 1):
        bare_rps = load(bare_port, bare_line, args.connections, args.seconds)
        play_rps = load(play_port, play_line, args.connections, args.seconds)
        ratios.append(play_rps / bare_rps)
        print(
            f"round {n}: bare Litestar JSON {bare_rps:.0f} req/s, GET /video/playurl"
            f" {play_rps:.0f} req/s, ratio {ratios[-1]:.2f}  (loadavg {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    median = statistics.median(ratios)
    verdict = "PASS" if median >= 0.4 else "FAIL"
    print(
        f"ratio playurl/bare: median {median:.2f}, best {max(ratios):.2f} over {len(ratios)}"
        f" interleaved rounds at {args.connections} connections  (target >= 0.4: {verdict})"
    )


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--file-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved playurl rounds")
    parser.add_argument("--skip-stream", action="store_true", help="playurl figures only")
    parser.add_argument("--stream-rounds", type=int, default=5, help="interleaved warm rounds")
    parser.add_argument("--cold-rounds", type=int, default=2, help="interleaved cold rounds")
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vasset-playbench-"))
    env = bench_env(tmp, VASSET_LOG_LEVEL="warning", VASSET_NONCE_TTL="60")
    app = app_of(env)
    server = ServerProcess(env).start()
    bare_port = ServerProcess({}).port
    bare = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--port",
            str(bare_port),
            "--no-ws",
            "bench.bare_app:make",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # a playable video: one source row and one MP4 rendition row pointing at a 1 GiB file
        key = "media/1/1-benchfile/1080p.mp4"
        obj = tmp / "storage" / "objects" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        with open(obj, "wb") as fh:
            block = os.urandom(16 << 20)
            for _ in range(args.file_mib // 16):
                fh.write(block)
        size = obj.stat().st_size
        now = int(time.time())
        sql(
            env,
            "INSERT INTO video (id, app_id, source_name, create_time, update_time, status,"
            " duration, media_info) VALUES (1, :a, 'b.mp4', :t, :t, 'playable', 1000, '{}')",
            a=app["id"],
            t=now,
        )
        sql(
            env,
            "INSERT INTO video (app_id, parent_id, source_name, create_time, update_time,"
            " status, definition, format, storage_uri, file_size, video_width, video_height,"
            " media_info) VALUES (:a, 1, 'b.mp4', :t, :t, 'playable', '1080p', 'mp4', :k,"
            " :s, 1920, 1080, '{\"bitrate\": 5000000}')",
            a=app["id"],
            t=now,
            k=key,
            s=size,
        )
        import httpx

        for _ in range(50):
            try:
                httpx.get(f"http://127.0.0.1:{bare_port}/bare")
                break
            except httpx.HTTPError:
                time.sleep(0.1)

        def playurl_line() -> bytes:
            q = signed_query("GET", "/video/playurl", {"vid": 1}, app["app_key"], app["app_secret"])
            return f"GET /video/playurl?{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

        def bare_line() -> bytes:
            return b"GET /bare HTTP/1.1\r\nHost: x\r\n\r\n"

        assert server.proc is not None
        print(f"vasset serve pid {server.proc.pid} (py-spy its child)", flush=True)
        first = httpx.get(server.url + playurl_line().split(b" ")[1].decode())
        play = json.loads(first.content)["play_urls"][0]["url"]
        playurl_rounds(server.port, bare_port, playurl_line, bare_line, args)
        if args.skip_stream:
            return

        # streaming: the same file from vasset, nginx (sendfile) and granian pathsend, warm and
        # cold, with curl (bench/streaming.py has the details and runs alone too)
        path = "/" + play.split("/", 3)[3]
        stream_args = argparse.Namespace(rounds=args.stream_rounds, cold_rounds=args.cold_rounds)
        compare(obj, key, server.url + path, server.proc.pid, stream_args)
    finally:
        bare.terminate()
        server.stop()
        drop_database(env)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
