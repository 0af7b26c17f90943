"""Ingest bench: single-stream part uploads over a real socket vs hashlib.md5, same run.

    python bench/ingest.py [--size-mib 512] [--part-mib 64] [--store local|oss]
                           [--protocol part|tus|clients|all] [--rounds 3]
                           [--client-parallel 4]

Prints throughput of the upload and of hashlib.md5 over the same bytes, their ratio, the
API's peak RSS during the upload, and the latency of the request carrying the last part.
With --store oss (the OSS test server runs as its own process, without CRC64) it also prints
the proxied upload against one oss2 put_object of the same bytes, then uploads the same file
directly (presigned part URLs, complete) and prints the API's received-bytes counter for it.
--protocol tus compares, over --rounds rounds, vasset's tus endpoint with its part mode and
with @tus/server (bench/ingest_tus.py) and exits 1 when a tus target is missed.
--protocol clients compares, over --rounds interleaved rounds, part uploads with httpx against
hashlib.md5 and the Python SDK's uploader against curl sending the same parts
(bench/ingest_clients.py), and exits 1 when a target is missed; all runs all three.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest_clients, ingest_tus
from bench.common import ROOT, RssSampler, ServerProcess, app_of, bench_env, drop_database
from bench.ingest_tus import tree_cpu
from tests.support.api import b64name, signed_query


def raw_put(
    port: int,
    path_qs: str,
    fh,
    offset: int,
    length: int,
    content_type: str | None = "application/octet-stream",
) -> tuple[int, bytes]:
    """PUT length bytes of a file with sendfile (the client costs almost no CPU)."""
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, body = ingest_tus.raw_request(port, "PUT", path_qs, headers, fh, offset, length)
    return status, body


class OssProcess:
    """The OSS test server as a subprocess (``python -m tests.oss_server --no-crc``)."""

    def __init__(self, data_dir: Path) -> None:
        from tests.support.server import free_port

        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = ["--port", str(self.port), "--bucket", "bench", "--data-dir", str(data_dir)]
        args += ["--access-key-id", "bench-ak", "--access-key-secret", "bench-sk", "--no-crc"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.oss_server", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the OSS test server did not start")

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(10)


def proxied_upload(server, q, src: Path, size: int, part: int, md5_hex: str | None):
    """One upload through the API, parts in order: (seconds, last part latency, body, parts)."""
    import httpx

    params = {"fn": b64name("bench.bin"), "fsize": size, "psize": part}
    if md5_hex:
        params["hash"] = md5_hex
    r = httpx.post(server.url + q("POST", "/video/upload/init", params))
    r.raise_for_status()
    init = r.json()
    t0 = time.perf_counter()
    last_latency = 0.0
    with open(src, "rb") as fh:
        for i in range(init["part_count"]):
            length = min(part, size - i * part)
            path_qs = q("PUT", "/video/upload/upload", {"upid": init["upload_id"], "pseq": i + 1})
            t_part = time.perf_counter()
            status, body = raw_put(server.port, path_qs, fh, i * part, length)
            last_latency = time.perf_counter() - t_part
            if status != 200:
                raise SystemExit(f"part {i + 1}: {status} {body!r}")
    if b'"uploaded"' not in body:
        raise SystemExit(f"the last part did not complete the upload: {body!r}")
    return time.perf_counter() - t0, last_latency, body, init["part_count"]


def put_object_mbps(endpoint: str, src: Path, size: int) -> float:
    """One oss2 put_object of the file straight to OSS (no CRC64 on either side), in MB/s."""
    import oss2

    bucket = oss2.Bucket(oss2.Auth("bench-ak", "bench-sk"), endpoint, "bench", enable_crc=False)
    with open(src, "rb") as fh:
        t0 = time.perf_counter()
        bucket.put_object("baseline.bin", fh)
        elapsed = time.perf_counter() - t0
    return size / elapsed / 1e6


def received_bytes(base_url: str) -> int:
    """The API's vasset_upload_bytes_received_total counter."""
    import httpx

    headers = {"Authorization": "Bearer bench-metrics"}  # VASSET_METRICS_TOKEN below
    for line in httpx.get(base_url + "/metrics", headers=headers).text.splitlines():
        if line.startswith("vasset_upload_bytes_received_total "):
            return int(float(line.split()[1]))
    raise SystemExit("no vasset_upload_bytes_received_total in /metrics")


def bench_direct(server, q, src: Path, size: int, part: int) -> None:
    """The same file as a direct upload: parts to presigned URLs, then complete."""
    import httpx

    before = received_bytes(server.url)
    # no hash: with it, the bytes just uploaded would make this an instant upload
    params = {"fn": b64name("d.bin"), "fsize": size, "psize": part, "direct": 1}
    init = httpx.post(server.url + q("POST", "/video/upload/init", params))
    if init.status_code != 200:
        raise SystemExit(f"direct init: {init.status_code} {init.text}")
    init = init.json()
    t0 = time.perf_counter()
    with open(src, "rb") as fh:
        for u in init["part_urls"]:
            url = urlsplit(u["url"])
            # no Content-Type: a presigned V1 URL signs it as empty
            status, body = raw_put(
                url.port, f"{url.path}?{url.query}", fh, (u["pseq"] - 1) * part, u["size"], None
            )
            if status != 200:
                raise SystemExit(f"direct part {u['pseq']}: {status} {body!r}")
    parts_s = time.perf_counter() - t0
    done = httpx.post(
        server.url + q("POST", "/video/upload/complete", {"upid": init["upload_id"]}),
        timeout=600,
    )
    total_s = time.perf_counter() - t0
    if done.status_code != 200 or done.json().get("status") != "uploaded":
        raise SystemExit(f"direct complete: {done.status_code} {done.text}")
    after = received_bytes(server.url)
    print(f"direct parts to OSS: {size / parts_s / 1e6:.0f} MB/s")
    print(f"direct complete:     {total_s - parts_s:.2f} s (ListParts, complete, one MD5 read)")
    print(f"direct end to end:   {size / total_s / 1e6:.0f} MB/s")
    print(f"API bytes received during the direct upload: {after - before}  (must be 0)")


def bench_part(server, q, args, src: Path, tmp: Path, md5_hex: str, md5_mbps: float, oss) -> None:
    """Part mode against hashlib.md5, the disk and (OSS) put_object; prints its figures."""
    part = args.part_mib << 20
    size = src.stat().st_size
    # Baseline 2: the disk's durable write speed (write the same bytes, fsync, same dir).
    disk_path = tmp / "disk-baseline.bin"
    t0 = time.perf_counter()
    with open(src, "rb") as fin, open(disk_path, "wb") as fout:
        while block := fin.read(16 << 20):
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    disk_mbps = size / (time.perf_counter() - t0) / 1e6
    disk_path.unlink()
    # Baseline 3 (OSS): one PutObject of the same bytes, right before the proxied upload.
    put_mbps = put_object_mbps(oss.endpoint, src, size) if oss is not None else 0.0

    sampler = RssSampler(server.proc.pid)
    sampler.start()
    upload_s, last_latency, body, part_count = proxied_upload(server, q, src, size, part, md5_hex)
    peak = sampler.stop()
    assert b'"uploaded"' in body and md5_hex.encode() in body, body
    upload_mbps = size / upload_s / 1e6
    print(f"file: {size} bytes, {part_count} parts of {part} bytes, store={args.store}")
    print(f"hashlib.md5 baseline: {md5_mbps:.0f} MB/s")
    print(f"part uploads:        {upload_mbps:.0f} MB/s")
    print(f"ratio upload/md5:    {upload_mbps / md5_mbps:.2f}  (target >= 0.8)")
    print(f"disk write+fsync:    {disk_mbps:.0f} MB/s (durable ceiling for local storage)")
    print(f"ratio upload/disk:   {upload_mbps / disk_mbps:.2f}")
    print(f"API peak RSS:        {peak / 1e6:.0f} MB  (target < 150 MB)")
    print(f"last part request:   {last_latency:.3f} s  (target < 0.2 s, no re-read)")
    if oss is not None:
        # Pairs taken back to back (put_object, then a proxied upload of the same bytes),
        # so a neighbour's load hits both sides of a ratio alike.
        pairs = [(put_mbps, upload_mbps)]
        api_cpu = oss_cpu = 0.0
        for _ in range(args.rounds - 1):
            put_mbps = put_object_mbps(oss.endpoint, src, size)
            api0, oss0 = tree_cpu(server.proc.pid), tree_cpu(oss.proc.pid)
            secs = proxied_upload(server, q, src, size, part, None)[0]
            api_cpu += tree_cpu(server.proc.pid) - api0
            oss_cpu += tree_cpu(oss.proc.pid) - oss0
            pairs.append((put_mbps, size / secs / 1e6))
        for i, (put, prox) in enumerate(pairs, 1):
            print(f"round {i}: oss2 put_object {put:.0f} MB/s, proxied {prox:.0f} MB/s")
        if args.rounds > 1:
            gib = (args.rounds - 1) * size / (1 << 30)
            print(
                f"CPU per GiB proxied: API {api_cpu / gib:.2f} s, OSS server "
                f"{oss_cpu / gib:.2f} s  (load-independent; both share this host's cores)"
            )
        ratios = sorted(prox / put for put, prox in pairs)
        print(
            f"ratio proxied/put_object: {statistics.median(ratios):.2f} median of "
            f"{[round(r, 2) for r in ratios]}  (target >= 0.7)"
        )
        bench_direct(server, q, src, size, part)


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument("--tail-kib", type=int, default=100, help="size of the small last part")
    parser.add_argument("--store", choices=["local", "oss"], default="local")
    parser.add_argument("--protocol", choices=["part", "tus", "clients", "all"], default="part")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="OSS: put_object/proxied pairs for the ratio; tus: part/tus/@tus-server triples;"
        " clients: md5/httpx/curl/SDK rounds",
    )
    parser.add_argument(
        "--client-parallel", type=int, default=4, help="clients: parts at a time (SDK and curl)"
    )
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="vasset-bench-"))
    part = args.part_mib << 20
    size = (args.size_mib << 20) + (args.tail_kib << 10)
    src = tmp / "input.bin"
    with open(src, "wb") as fh:
        block = os.urandom(16 << 20)
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n

    oss = None
    extra: dict[str, str] = {}
    if args.store == "oss":
        # A separate process: the OSS test server's HTTP threads must not share our GIL.
        oss = OssProcess(tmp / "oss")
        extra = {
            "VASSET_STORAGE_URL": "oss://bench/vasset",
            "VASSET_OSS_ENDPOINT": oss.endpoint,
            "VASSET_OSS_BUCKET": "bench",
            "VASSET_OSS_ACCESS_KEY_ID": "bench-ak",
            "VASSET_OSS_ACCESS_KEY_SECRET": "bench-sk",
            "VASSET_METRICS_TOKEN": "bench-metrics",
        }
    env = bench_env(tmp, **extra)
    app = app_of(env)
    server = ServerProcess(
        env,
        log_path=Path(os.environ["BENCH_SERVER_LOG"])
        if os.environ.get("BENCH_SERVER_LOG")
        else None,
    ).start()
    tus_ok = clients_ok = True
    try:
        # Baseline 1: hashlib.md5 over the same bytes (read from page cache in 64 MiB blocks).
        with open(src, "rb") as fin:
            data_blocks = [fin.read(part) for _ in range((size + part - 1) // part)]
        t0 = time.perf_counter()
        h = hashlib.md5()
        for b in data_blocks:
            h.update(b)
        md5_s = time.perf_counter() - t0
        md5_hex = h.hexdigest()
        del data_blocks
        md5_mbps = size / md5_s / 1e6

        def q(method: str, path: str, params: dict) -> str:
            return (
                path + "?" + signed_query(method, path, params, app["app_key"], app["app_secret"])
            )

        if args.protocol in ("part", "all"):
            bench_part(server, q, args, src, tmp, md5_hex, md5_mbps, oss)
        if args.protocol in ("tus", "all"):
            count = (size + part - 1) // part
            print(
                f"tus: {size} bytes as {count} PATCHes of <= {part} bytes (part mode: {count}"
                f" parts), {args.rounds} rounds, store={args.store}",
                flush=True,
            )

            def part_upload() -> tuple[float, float]:
                return proxied_upload(server, q, src, size, part, None)[:2]

            tus_ok = ingest_tus.run(
                server, q, src, size, part, md5_hex, args.rounds, tmp, part_upload
            )
        if args.protocol in ("clients", "all"):
            clients_ok = ingest_clients.run(
                server.url, q, app, src, part, args.rounds, args.client_parallel, server.proc.pid
            )
    finally:
        server.stop()
        if oss is not None:
            oss.stop()
        drop_database(env)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if not (tus_ok and clients_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
