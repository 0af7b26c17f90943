"""How the uploader sends parts: held parts, streamed big parts, no-instant uploads hashed once,
cut connections retried, and resume after the uploading process is killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from vasset_client import Uploader, errors

from tests.sdk.conftest import make_client, random_file

KIB = 1024
PSIZE = 200 * KIB


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_no_instant_sends_known_bytes_again_hashed_once_and_streams_big_parts(
    client, tmp_path, state_dir, monkeypatch
):
    f = random_file(tmp_path / "a.mp4", 5 * PSIZE + 777)
    first = Uploader(client, f, part_size=PSIZE, state_dir=state_dir).run()
    assert not first.instant and first.md5 == md5_of(f)
    # Parts over BUFFER_MAX are streamed from the file; the 777-byte last part is held.
    monkeypatch.setattr("vasset_client.uploader.BUFFER_MAX", PSIZE - 1)
    hashed: list[int] = []
    hashes: list[str | None] = []
    send = client.upload_part

    def spy(upid, pseq, body, hash=None, size=None):
        hashes.append(hash)
        return send(upid, pseq, body, hash=hash, size=size)

    monkeypatch.setattr(client, "upload_part", spy)
    second = Uploader(
        client,
        f,
        part_size=PSIZE,
        parallel=4,
        state_dir=state_dir,
        instant=False,
        on_hash_progress=lambda done, total: hashed.append(done),
    ).run()
    # instant=False never asks for an instant upload: every part went out again, each with
    # its own MD5, and the whole file was not hashed a second time.
    assert not second.instant and second.parts_sent == 6 and second.vid != first.vid
    data = f.read_bytes()
    expected = [hashlib.md5(data[i : i + PSIZE]).hexdigest() for i in range(0, len(data), PSIZE)]
    assert sorted(hashes) == sorted(expected) and hashed == []
    assert second.md5 == md5_of(f)
    info = client.mediainfo(second.vid)
    assert (info.md5, info.file_size) == (md5_of(f), f.stat().st_size)
    assert list(state_dir.iterdir()) == []


def test_no_instant_refuses_a_file_that_changed_while_it_was_sent(
    client, tmp_path, state_dir, monkeypatch
):
    f = random_file(tmp_path / "c.mp4", 4 * PSIZE)
    touched: list[int] = []
    deleted: list[int] = []
    delete = client.delete
    monkeypatch.setattr(client, "delete", lambda vid: deleted.append(vid) or delete(vid))

    def progress(done: int, total: int) -> None:
        if done and not touched:  # the first part is out: the file changes (same size)
            stamp = f.stat().st_mtime_ns + 1_000_000_000
            os.utime(f, ns=(stamp, stamp))
            touched.append(done)

    up = Uploader(
        client,
        f,
        part_size=PSIZE,
        parallel=1,
        state_dir=state_dir,
        instant=False,
        on_progress=progress,
    )
    with pytest.raises(errors.FileChanged):
        up.run()
    assert touched and len(deleted) == 1
    assert list(state_dir.iterdir()) == []
    # The video made of parts read before and after the change is gone.
    with pytest.raises(errors.VideoNotFound):
        client.mediainfo(deleted[0])


class CuttingProxy:
    """A TCP proxy that cuts its first `cuts` part PUTs after `after` bytes of the request."""

    def __init__(self, upstream_port: int, cuts: int, after: int = 64 * KIB) -> None:
        self.upstream_port = upstream_port
        self.cuts = cuts
        self.after = after
        self.cut = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(down,), daemon=True).start()

    def _serve(self, down: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self._copy, args=(up, down), daemon=True).start()
        budget: int | None = None  # bytes of this request still to forward before the cut
        try:
            while data := down.recv(65536):
                if budget is None and data.startswith(b"PUT /video/upload/upload"):
                    with self._lock:
                        if self.cut < self.cuts:
                            self.cut += 1
                            budget = self.after
                if budget is not None:
                    if len(data) >= budget:
                        up.sendall(data[:budget])
                        return  # the finally cuts both sides mid-body
                    budget -= len(data)
                up.sendall(data)
        except OSError:
            pass
        finally:
            for s in (down, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass


def test_parts_cut_mid_body_are_sent_again(server, app_creds, tmp_path, state_dir):
    f = random_file(tmp_path / "cut.mp4", 6 * PSIZE + 5)
    proxy = CuttingProxy(server.port, cuts=3)
    try:
        with make_client(proxy.url, app_creds) as c:
            result = Uploader(c, f, part_size=PSIZE, parallel=2, state_dir=state_dir).run()
    finally:
        proxy.close()
    assert proxy.cut == 3  # three part PUTs really were cut
    assert result.md5 == md5_of(f) and result.parts_sent == 7 and not result.instant
    with make_client(server.url, app_creds) as c:
        info = c.mediainfo(result.vid)
    assert (info.md5, info.file_size) == (md5_of(f), f.stat().st_size)


def test_resume_after_the_uploading_process_is_killed(client, server, app_creds, tmp_path):
    state_dir = tmp_path / "state"
    f = random_file(tmp_path / "killed.mp4", 12 * 100 * KIB + 3)
    env = {
        **os.environ,
        "VASSET_URL": server.url,
        "VASSET_APP_KEY": app_creds["app_key"],
        "VASSET_APP_SECRET": app_creds["app_secret"],
    }
    argv = [sys.executable, "-m", "vasset_client", "upload", str(f), "--part-size", "100K"]
    argv += ["--parallel", "1", "--limit-rate", "250K", "--no-progress"]
    argv += ["--state-dir", str(state_dir), "--no-instant"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        received = 0
        while received < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            states = list(state_dir.glob("*")) if state_dir.exists() else []
            if states:
                upid = json.loads(states[0].read_text())["upload_id"]
                received = 13 - len(client.resume(upid).missing)
        assert received >= 3 and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    seen: list[int] = []
    result = Uploader(
        client, f, part_size=100 * KIB, state_dir=state_dir, on_progress=lambda d, t: seen.append(d)
    ).run()
    assert result.resumed and result.upload_id == upid
    assert result.md5 == md5_of(f) and 0 < result.parts_sent <= 13 - received
    assert seen[0] >= received * 100 * KIB and seen[-1] == f.stat().st_size
    assert list(state_dir.iterdir()) == []
