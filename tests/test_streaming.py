"""/play file streaming from local disk: exact bytes and ranges across blocks, cold pages, the cap
counting a stream until it ends, disconnects and shrinking files, and no leaked descriptors."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx
import pytest

from tests.support.server import stalled_reader
from tests.support.stack import Stack
from vasset import errors
from vasset.playback.blocks import FileBlocks
from vasset.playback.stream import READ_SIZE, SEND_SIZE
from vasset.playback.urls import play_path

MIB = 1 << 20
CAP = 3


def _secret(stack: Stack) -> bytes:
    from vasset.db import create_engine
    from vasset.playback.secret import url_secret

    async def secret() -> bytes:
        engine = create_engine(stack.env["VASSET_DATABASE_URL"], pool_size=1)
        try:
            return await url_secret(engine)
        finally:
            await engine.dispose()

    return asyncio.run(secret())


def _cached(path) -> bool:
    """Whether the first page of path is in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(4096)], 0, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _evict(path) -> None:
    """Drop path's pages from the page cache, so reading it must wait for the disk."""
    for _ in range(50):  # pages just read may sit in per-CPU lists a moment before they can go
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if not _cached(path):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} stays in the page cache")


def _fds(pid: int) -> int:
    """Open descriptors of a process and its descendants (granian forks its worker)."""
    total, pids = 0, [pid]
    while pids:
        p = pids.pop()
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
            with open(f"/proc/{p}/task/{p}/children") as fh:
                pids.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming")
    s = Stack(root, workers=0, VASSET_MAX_CONCURRENT_STREAMS=str(CAP)).start()
    secret = _secret(s)

    def put(key: str, data: bytes) -> str:
        obj = root / "storage" / "objects" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(data)
        return s.server.url + play_path(secret, key, int(time.time()) + 3600)

    s.put = put
    s.obj = lambda key: root / "storage" / "objects" / key
    # Not a multiple of a read or a send: the last block and the last send are short.
    s.data = os.urandom(3 * READ_SIZE + SEND_SIZE + 12345)
    s.key = "media/5/1-stream/720p.mp4"
    s.url = put(s.key, s.data)
    s.big = put("media/5/1-stream/1080p.mp4", os.urandom(16 * MIB))
    yield s
    s.stop()


def test_whole_file_warm_and_cold(served):
    r = httpx.get(served.url)
    assert r.status_code == 200 and r.content == served.data
    assert r.headers["content-length"] == str(len(served.data))
    assert r.headers["content-type"] == "video/mp4" and r.headers["accept-ranges"] == "bytes"
    _evict(served.obj(served.key))  # now the server's reads must wait for the disk
    assert httpx.get(served.url).content == served.data


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        (f"bytes={READ_SIZE - 3}-{3 * READ_SIZE + 7}", READ_SIZE - 3, 3 * READ_SIZE + 7),
        (f"bytes={SEND_SIZE + 1}-", SEND_SIZE + 1, None),
        ("bytes=-1000", -1000, None),
        (f"bytes=-{10 * READ_SIZE}", 0, None),  # longer than the file: all of it, still 206
        ("bytes=0-0", 0, 0),
        (f"bytes={READ_SIZE}-{READ_SIZE}", READ_SIZE, READ_SIZE),
        (f"bytes=5-{10 * READ_SIZE}", 5, None),  # an end past the file is cut at its last byte
    ],
)
def test_ranges_across_blocks(served, header, start, end):
    size = len(served.data)
    r = httpx.get(served.url, headers={"Range": header})
    want = served.data[start : None if end is None else end + 1]
    first = start % size if start < 0 else start
    assert r.status_code == 206
    assert r.content == want
    assert r.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{size}"
    assert r.headers["content-length"] == str(len(want))


def test_head_and_unsatisfiable_ranges(served):
    size = len(served.data)
    head = httpx.head(served.url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    ranged = httpx.head(served.url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.headers["content-range"] == f"bytes 10-19/{size}"
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0", "bytes=9-3"):
        r = httpx.get(served.url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.json()["code"] == "InvalidRange"
        assert r.headers["content-range"] == f"bytes */{size}"


def test_cap_counts_streams_until_they_end_and_a_disconnect_frees_its_slot(served):
    port = served.server.port
    path = "/" + served.big.split("/", 3)[3]
    readers = [stalled_reader(port, path)[0] for _ in range(CAP)]
    try:
        time.sleep(0.5)
        r = httpx.get(served.url)
        assert r.status_code == 429 and r.json()["code"] == "Throttled"
        readers.pop().close()  # one client leaves mid-file
        deadline = time.monotonic() + 15
        while (r := httpx.get(served.url)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and r.content == served.data
        # Its slot is back but the other two still count: one more stalled reader fills the cap.
        readers.append(stalled_reader(port, path)[0])
        time.sleep(0.5)
        assert httpx.get(served.url).status_code == 429
    finally:
        for s in readers:
            s.close()
    # Finished streams give their slots back: more full reads than slots, one after another.
    deadline = time.monotonic() + 15
    while httpx.get(served.url).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(2 * CAP):
        assert httpx.get(served.url).content == served.data


def test_a_file_that_shrinks_while_sent_ends_short_and_frees_its_slot(served):
    key = "media/5/1-stream/shrinks.mp4"
    data = os.urandom(16 * MIB)
    url = served.put(key, data)
    host_port = url.split("/")[2]
    s = socket.create_connection(("127.0.0.1", int(host_port.split(":")[1])))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    s.settimeout(20)
    s.sendall(f"GET /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = s.recv(4096)
    assert got.startswith(b"HTTP/1.1 200")
    os.truncate(served.obj(key), 10 * MIB)  # far beyond what was sent or queued so far
    while chunk := s.recv(1 << 20):
        got += chunk
    s.close()
    body = got.split(b"\r\n\r\n", 1)[1]
    assert 0 < len(body) < len(data) and data.startswith(body)
    for _ in range(CAP + 1):  # its slot came back
        assert httpx.get(served.url).status_code == 200


def test_no_descriptor_leaks(served):
    pid = served.server.proc.pid
    port = served.server.port
    path = "/" + served.big.split("/", 3)[3]
    for _ in range(3):  # warm: pools and lazily opened files
        httpx.get(served.url)
    time.sleep(0.5)
    before = _fds(pid)
    for _ in range(10):
        stalled_reader(port, path)[0].close()
        assert httpx.get(served.url, headers={"Range": "bytes=7-70000"}).status_code == 206
        assert httpx.get(served.url, headers={"Range": "bytes=-0"}).status_code == 416
    time.sleep(1)
    assert _fds(pid) <= before + 3, (before, _fds(pid))


def test_file_blocks_reads_exact_ranges_and_stops_at_a_shorter_file(tmp_path):
    data = os.urandom(5 * 4096 + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    async def read(start: int, end: int, block: int) -> list[bytes]:
        source = await FileBlocks.open(path, start, end, block)
        try:
            return [bytes(b) async for b in source]
        finally:
            await source.aclose()
            await source.aclose()  # idempotent

    blocks = asyncio.run(read(3, len(data) - 1, 4096))
    assert b"".join(blocks) == data[3:] and {len(b) for b in blocks[:-1]} == {4096}
    assert asyncio.run(read(4095, 4096, 4096)) == [data[4095:4097]]
    _evict(path)
    assert b"".join(asyncio.run(read(0, len(data) - 1, 8192))) == data
    path.write_bytes(data[:5000])  # shorter than the range asked for: stops at its end
    assert b"".join(asyncio.run(read(0, len(data) - 1, 4096))) == data[:5000]
    for missing in (tmp_path / "absent", tmp_path):  # gone, or not a regular file
        with pytest.raises(errors.ObjectNotFound):
            asyncio.run(FileBlocks.open(missing, 0, 10, 4096))
