"""Streaming bench: /play of one big file vs nginx (sendfile on) serving the same file, same client.

    python bench/streaming.py [--file-mib 1024] [--rounds 5] [--cold-rounds 2] [--before REV]

Peers, each started here on 127.0.0.1 and stopped at the end (none is a runtime dependency):
nginx from Debian (``apt-get install -y nginx-light`` when missing; root only) with a generated
config (``sendfile on``, one worker) in a temp dir; a bare granian app answering with the same
file through the ASGI pathsend extension (the zero-copy ceiling of vasset's server stack, which
vasset cannot use: see bench/pathsend_app.py); and with ``--before REV`` a second ``vasset
serve`` running the ``vasset`` package of that git revision (``git archive``), the "today" of
a change. The client is curl writing to /dev/null, one GET per figure.

Rounds are interleaved (nginx, vasset, ... then again) because the machine is shared: each
ratio uses its own round, and the median and best ratios are printed with the load average.
Besides MB/s, each server's CPU seconds per GiB sent (its process tree's utime+stime) is printed:
it depends much less on what else the machine runs. Warm: the file is read once first. Cold: the
file's pages are evicted before every single GET (posix_fadvise DONTNEED: this file only, the
rest of the machine's page cache stays).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, ServerProcess, bench_env, drop_database
from bench.playback_memory import signed_path
from tests.support.server import free_port

TARGET = 0.7
GIB = 1 << 30


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    total, pids = 0, [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            with open(f"/proc/{p}/task/{p}/children") as fh:
                pids.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def curl_rate(url: str, size: int) -> float:
    """MB/s of one GET of url by curl into /dev/null (curl's own timing, not its start-up)."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{speed_download}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if out[0] != "200" or int(out[1]) != size:
        raise RuntimeError(f"GET {url}: HTTP {out[0]}, {out[1]} of {size} bytes")
    return float(out[2]) / 1e6


def evict(path: Path) -> None:
    """Drop path's pages from the page cache (only this file's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def nginx_binary() -> str:
    """Debian's nginx, installed when missing (apt-get, root only)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "nginx-light"], check=True, capture_output=True)
        found = "/usr/sbin/nginx"
    return found


def start_nginx(tmp: Path, root: Path, port: int) -> subprocess.Popen:
    """A private nginx (sendfile on, one worker, no access log) serving root on port.

    Its worker runs as this user (as root nginx would switch to nobody, who cannot read temp dirs).
    """
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {tmp}/t; proxy_temp_path {tmp}/t; fastcgi_temp_path {tmp}/t;
  uwsgi_temp_path {tmp}/t; scgi_temp_path {tmp}/t;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    return subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(tmp)])


def start_pathsend(path: Path, port: int) -> subprocess.Popen:
    """The bare granian app that answers with path through pathsend."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--no-ws",
            "--port",
            str(port),
            "bench.pathsend_app:make",
        ],
        cwd=ROOT,
        env={**os.environ, "BENCH_FILE": str(path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_before(rev: str, env: dict[str, str], tmp: Path) -> ServerProcess:
    """`vasset serve` running the vasset package of git revision rev (exported, not checked out)."""
    export = tmp / "before"
    export.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "vasset"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(export, filter="data")
    server = ServerProcess(env)
    # `python -m vasset` imports from its working directory first: run it from the export.
    server.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vasset",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
        ],
        cwd=export,
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until_up(server.url + "/health", 30)
    return server


def wait_until_up(url: str, deadline: float = 20) -> None:
    """Poll url until it answers."""
    import httpx

    end = time.monotonic() + deadline
    while True:
        try:
            httpx.head(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def run_rounds(
    label: str,
    peers: dict[str, tuple[str, int]],
    size: int,
    rounds: int,
    before_each=None,
) -> dict[str, list[float]]:
    """Interleaved rounds of one GET per peer; prints each round; MB/s per peer."""
    rates: dict[str, list[float]] = {name: [] for name in peers}
    cpu: dict[str, list[float]] = {name: [] for name in peers}
    for n in range(1, rounds + 1):
        line = []
        for name, (url, pid) in peers.items():
            if before_each is not None:
                before_each()
            used = tree_cpu(pid)
            rates[name].append(curl_rate(url, size))
            cpu[name].append((tree_cpu(pid) - used) / (size / GIB))
            line.append(f"{name} {rates[name][-1]:.0f}")
        print(f"[{label}] round {n}: " + ", ".join(line) + f" MB/s  (loadavg {os.getloadavg()})")
    for name in peers:
        print(
            f"[{label}] {name:<18} median {statistics.median(rates[name]):6.0f} MB/s,"
            f" best {max(rates[name]):6.0f} MB/s, server CPU {statistics.median(cpu[name]):.2f}"
            f" s/GiB (median)"
        )
    return rates


def ratio_line(label: str, rates: dict[str, list[float]], subject: str, base: str, target: float):
    """Print subject/base per round: median and best, with the verdict on the median."""
    ratios = [s / b for s, b in zip(rates[subject], rates[base], strict=True)]
    median = statistics.median(ratios)
    verdict = "PASS" if median >= target else "FAIL"
    print(
        f"[{label}] ratio {subject}/{base}: median {median:.2f}, best {max(ratios):.2f} over"
        f" {len(ratios)} interleaved rounds  (target >= {target}: {verdict})",
        flush=True,
    )


def compare(
    obj: Path, key: str, vasset_url: str, vasset_pid: int, args: argparse.Namespace, before=None
) -> None:
    """Warm and cold rounds: vasset (and vasset before) vs nginx and granian pathsend."""
    tmp = Path(tempfile.mkdtemp(prefix="vasset-streambench-"))
    (tmp / "t").mkdir()
    objects = Path(str(obj).removesuffix(key))
    nginx_port, pathsend_port = free_port(), free_port()
    nginx = start_nginx(tmp, objects, nginx_port)
    pathsend = start_pathsend(obj, pathsend_port)
    try:
        nginx_url = f"http://127.0.0.1:{nginx_port}/{key}"
        pathsend_url = f"http://127.0.0.1:{pathsend_port}/"
        wait_until_up(nginx_url)
        wait_until_up(pathsend_url)
        size = obj.stat().st_size
        peers = {"nginx": (nginx_url, nginx.pid), "vasset": (vasset_url, vasset_pid)}
        if before is not None:
            peers["vasset-before"] = before
        peers["granian-pathsend"] = (pathsend_url, pathsend.pid)
        print(f"file {size >> 20} MiB; client: curl -o /dev/null; peers: {', '.join(peers)}")
        subprocess.run(["cat", str(obj)], stdout=subprocess.DEVNULL, check=True)  # warm
        warm = run_rounds("warm", peers, size, args.rounds)
        ratio_line("warm", warm, "vasset", "nginx", TARGET)
        if before is not None:
            ratio_line("warm", warm, "vasset", "vasset-before", 1.0)
        if args.cold_rounds:
            cold = run_rounds("cold", peers, size, args.cold_rounds, lambda: evict(obj))
            ratio_line("cold", cold, "vasset", "nginx", TARGET)
            if before is not None:
                ratio_line("cold", cold, "vasset", "vasset-before", 0.9)
    finally:
        for proc in (nginx, pathsend):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--file-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved warm rounds")
    parser.add_argument("--cold-rounds", type=int, default=2, help="interleaved cold rounds")
    parser.add_argument("--before", help="git revision whose vasset runs as 'vasset-before'")
    args = parser.parse_args()
    print("command:", "python " + " ".join(sys.argv), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vasset-streambench-"))
    env = bench_env(tmp)
    server = ServerProcess(env).start()
    before: ServerProcess | None = None
    try:
        key = "media/1/1-streambench/1080p.mp4"
        obj = tmp / "storage" / "objects" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        with open(obj, "wb") as fh:
            block = os.urandom(16 << 20)
            for _ in range(max(1, args.file_mib // 16)):
                fh.write(block)
        path = signed_path(env, key)
        assert server.proc is not None
        peer = None
        if args.before:
            before = start_before(args.before, env, tmp)
            assert before.proc is not None
            peer = (before.url + path, before.proc.pid)
        compare(obj, key, server.url + path, server.proc.pid, args, peer)
    finally:
        server.stop()
        if before is not None:
            before.stop()
        drop_database(env)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
