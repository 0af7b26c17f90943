"""Ingest bench, tus half: vasset's tus endpoint vs its part mode vs @tus/server, same run.

Used by ``python bench/ingest.py --protocol tus|all``. Each round uploads the same file three
ways back to back (order rotated per round, so page-cache writeback and a neighbour's load hit
every side alike): vasset part mode, vasset tus (ticket, POST /files/, PATCHes) and @tus/server
2.4.5 + @tus/file-store 2.1.1 under Node (pinned by bench/tus_node/package-lock.json, installed
with ``npm ci`` into bench/.cache/tus-node; never a dependency of vasset itself).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.common import ROOT, RssSampler, tree_rss

NODE_DIR = ROOT / "bench" / "tus_node"
CACHE_DIR = ROOT / "bench" / ".cache" / "tus-node"
SERVER_SCRIPT = ROOT / "bench" / "tus_server.mjs"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}

# (seconds, latency of the request carrying the last bytes)
Timing = tuple[float, float]


def raw_request(
    port: int,
    method: str,
    path_qs: str,
    headers: dict[str, str],
    fh=None,
    offset: int = 0,
    length: int = 0,
) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh socket, body by sendfile (the client costs almost no CPU)."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        lines = [f"{method} {path_qs} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {length}", "Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode())
        sent = 0
        while sent < length:
            sent += sock.sendfile(fh, offset + sent, length - sent)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), answer, body


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{p}/task/{p}/children") as fh:
                pids.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total


def tus_upload(port: int, create: dict[str, str], auth: dict[str, str], fh, size: int, part: int):
    """POST /files/ then PATCHes of part bytes: (PATCH seconds, last PATCH latency, headers)."""
    status, headers, body = raw_request(port, "POST", "/files/", {**TUS, **auth, **create})
    if status != 201:
        raise SystemExit(f"tus create on :{port}: {status} {body!r}")
    path = urlsplit(headers["location"]).path
    t0 = time.perf_counter()
    offset = 0
    while offset < size:
        length = min(part, size - offset)
        t_patch = time.perf_counter()
        patch = {**OCTETS, **auth, "Upload-Offset": str(offset)}
        status, headers, body = raw_request(port, "PATCH", path, patch, fh, offset, length)
        last_latency = time.perf_counter() - t_patch
        if status != 204:
            raise SystemExit(f"tus PATCH {path} at {offset} on :{port}: {status} {body!r}")
        offset += length
        if int(headers["upload-offset"]) != offset:
            raise SystemExit(f"tus PATCH {path}: Upload-Offset {headers['upload-offset']}")
    return time.perf_counter() - t0, last_latency, headers


def metadata(name: str) -> str:
    """Upload-Metadata carrying a filename."""
    return "filename " + base64.b64encode(name.encode()).decode()


def vasset_tus(server, q, src: Path, size: int, part: int, md5_hex: str) -> Timing:
    """One vasset tus upload with a one-use ticket; checks the completion headers."""
    r = httpx.post(
        server.url + q("POST", "/video/upload/ticket", {"max_size": size, "auto": 0, "uses": 1})
    )
    if r.status_code != 200:
        raise SystemExit(f"ticket: {r.status_code} {r.text}")
    auth = {"Authorization": f"Bearer {r.json()['ticket']}"}
    create = {"Upload-Length": str(size), "Upload-Metadata": metadata("bench-tus.bin")}
    with open(src, "rb") as fh:
        secs, last, headers = tus_upload(server.port, create, auth, fh, size, part)
    if headers.get("vasset-status") != "uploaded" or headers.get("vasset-md5") != md5_hex:
        raise SystemExit(f"the last PATCH did not complete the upload: {headers}")
    return secs, last


class NodeTusServer:
    """@tus/server with @tus/file-store under Node, on a free 127.0.0.1 port."""

    def __init__(self, upload_dir: Path) -> None:
        from tests.support.server import free_port

        node = shutil.which("node")
        if node is None:
            raise SystemExit("--protocol tus needs node (>= 20.19) for the @tus/server baseline")
        install()
        self.port = free_port()
        self.upload_dir = upload_dir
        argv = [node, str(SERVER_SCRIPT), str(CACHE_DIR / "node_modules"), str(self.port)]
        self.proc = subprocess.Popen([*argv, str(upload_dir)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the @tus/server baseline exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("the @tus/server baseline did not start")

    def upload(self, src: Path, size: int, part: int) -> Timing:
        """One upload, then its stored size is checked and the stored bytes removed."""
        create = {"Upload-Length": str(size), "Upload-Metadata": metadata("bench-node.bin")}
        with open(src, "rb") as fh:
            secs, last, _ = tus_upload(self.port, create, {}, fh, size, part)
        stored = [p for p in self.upload_dir.iterdir() if not p.name.endswith(".json")]
        if len(stored) != 1 or stored[0].stat().st_size != size:
            raise SystemExit(f"@tus/server stored {[(p, p.stat().st_size) for p in stored]}")
        for p in self.upload_dir.iterdir():
            p.unlink()
        return secs, last

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(10)


def install() -> None:
    """npm ci the pinned lock into bench/.cache/tus-node unless that exact lock is installed."""
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    marker = CACHE_DIR / "node_modules" / ".package-lock.json"
    cached = CACHE_DIR / "package-lock.json"
    if marker.exists() and cached.exists() and cached.read_bytes() == lock:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("--protocol tus needs npm to install @tus/server into bench/.cache")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(NODE_DIR / "package.json", CACHE_DIR / "package.json")
    shutil.copy(NODE_DIR / "package-lock.json", cached)
    print("installing @tus/server 2.4.5 + @tus/file-store 2.1.1 into", CACHE_DIR, flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CACHE_DIR, check=True)


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def listed(values: list[float], digits: int) -> list[float]:
    """Values rounded for printing."""
    return [round(v, digits) for v in values]


def run(
    server,
    q,
    src: Path,
    size: int,
    part: int,
    md5_hex: str,
    rounds: int,
    tmp: Path,
    part_upload: Callable[[], Timing],
) -> bool:
    """The three-way tus comparison; prints medians and targets, True when all pass."""
    (tmp / "tus-node").mkdir(exist_ok=True)
    node = NodeTusServer(tmp / "tus-node")
    # The API's resting size, so the peak below reads as what the uploads added to it.
    idle_rss = tree_rss(server.proc.pid) / 1e6
    mbps: dict[str, list[float]] = {"part": [], "tus": [], "node": []}
    # Server CPU per GiB does not depend on a neighbour's load (this host's cores are shared).
    cpu = dict.fromkeys(mbps, 0.0)
    pids = {"part": server.proc.pid, "tus": server.proc.pid, "node": node.proc.pid}
    last: list[float] = []
    rss: list[float] = []

    def tus_round() -> Timing:
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        try:
            return vasset_tus(server, q, src, size, part, md5_hex)
        finally:
            rss.append(sampler.stop() / 1e6)

    sides: list[tuple[str, Callable[[], Timing]]] = [
        ("part", part_upload),
        ("tus", tus_round),
        ("node", lambda: node.upload(src, size, part)),
    ]
    try:
        for i in range(rounds):
            order = sides[i % 3 :] + sides[: i % 3]
            for name, upload in order:
                cpu0 = tree_cpu(pids[name])
                secs, latency = upload()
                cpu[name] += tree_cpu(pids[name]) - cpu0
                mbps[name].append(size / secs / 1e6)
                if name == "tus":
                    last.append(latency)
            print(
                f"round {i + 1} ({', '.join(n for n, _ in order)}): part {mbps['part'][-1]:.0f}"
                f" MB/s, tus {mbps['tus'][-1]:.0f} MB/s, @tus/server {mbps['node'][-1]:.0f}"
                f" MB/s; tus last PATCH {last[-1]:.3f} s, API peak RSS {rss[-1]:.0f} MB",
                flush=True,
            )
    finally:
        node.stop()
    med = {k: statistics.median(v) for k, v in mbps.items()}
    vs_part = [t / p for t, p in zip(mbps["tus"], mbps["part"], strict=True)]
    vs_node = [t / n for t, n in zip(mbps["tus"], mbps["node"], strict=True)]
    checks = [
        statistics.median(vs_part) >= 0.9,
        statistics.median(vs_node) >= 2,
        max(rss) < 150,
        statistics.median(last) < 0.2,
    ]
    print(f"medians of {rounds} rounds:")
    print(f"vasset part mode:       {med['part']:.0f} MB/s")
    print(f"vasset tus:             {med['tus']:.0f} MB/s")
    print(f"@tus/server 2.4.5:      {med['node']:.0f} MB/s  (@tus/file-store 2.1.1, Node)")
    gib = rounds * size / (1 << 30)
    print(
        f"server CPU per GiB:     part {cpu['part'] / gib:.2f} s, tus {cpu['tus'] / gib:.2f} s,"
        f" @tus/server {cpu['node'] / gib:.2f} s  (load-independent)"
    )
    print(
        f"ratio tus/part:         {statistics.median(vs_part):.2f} median of"
        f" {listed(vs_part, 2)}  (target >= 0.9) {verdict(checks[0])}"
    )
    print(
        f"ratio tus/@tus-server:  {statistics.median(vs_node):.2f} median of"
        f" {listed(vs_node, 2)}  (target >= 2) {verdict(checks[1])}"
    )
    print(
        f"API peak RSS, tus:      {max(rss):.0f} MB max of {listed(rss, 0)}"
        f"  (target < 150 MB) {verdict(checks[2])}; {idle_rss:.0f} MB before the rounds"
        f" (granian's main process + 1 worker), +{max(rss) - idle_rss:.0f} MB by the uploads"
    )
    print(
        f"last PATCH latency:     {statistics.median(last):.3f} s median of"
        f" {listed(last, 3)}  (target < 0.2 s) {verdict(checks[3])}"
    )
    return all(checks)
