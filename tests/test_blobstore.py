"""One BlobStore suite that every backend passes: local disk, and OSS against the test server."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import requests

from tests.oss_server import OssServer
from tests.oss_server.pytest_plugin import (
    OSS_ACCESS_KEY_ID,
    OSS_ACCESS_KEY_SECRET,
    OSS_BUCKET,
    OSS_REGION,
    oss_server,
)
from vasset.errors import ObjectNotFound, StorageError
from vasset.storage.base import BlobStore, PartInfo
from vasset.storage.local import LocalBlobStore
from vasset.storage.oss import OssBlobStore

__all__ = ["oss_server"]  # a fixture, imported for pytest

PART = 100 * 1024  # the OSS minimum for non-last parts


def _oss_store(server: OssServer, **kw) -> OssBlobStore:
    options = {"prefix": "pfx", "pool_size": 4, "backoff": 0.01, "timeout": 5} | kw
    return OssBlobStore(
        server.endpoint, OSS_BUCKET, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, **options
    )


@pytest.fixture(params=["local", "oss", "oss-v4"])
async def store(request, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """Each backend in turn (OSS through V1 and V4 signatures)."""
    if request.param == "local":
        backend: BlobStore = LocalBlobStore(tmp_path / "local")
    else:
        server = request.getfixturevalue("oss_server")
        if request.param == "oss-v4":
            backend = _oss_store(server, signature_version="v4", region=OSS_REGION)
        else:
            backend = _oss_store(server)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def oss_store(oss_server: OssServer) -> AsyncIterator[OssBlobStore]:
    """The OSS backend alone, for what only OSS does (faults, presigned URLs)."""
    backend = _oss_store(oss_server)
    try:
        yield backend
    finally:
        await backend.close()


async def _collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


def _data(n: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (n // len(block) + 1))[:n]


async def _write_part(
    store: BlobStore, key: str, upload_id: str, number: int, data: bytes, chunk: int = 32 << 10
) -> PartInfo:
    writer = await store.open_part(key, upload_id, number, (number - 1) * PART, len(data))
    for i in range(0, len(data), chunk):
        # write() blocks and is called from a worker thread, as the upload service does
        await asyncio.to_thread(writer.write, data[i : i + chunk])
    return await writer.commit(hashlib.md5(data).hexdigest())


# whole objects
async def test_put_bytes_head_read_delete(store: BlobStore) -> None:
    data = _data(5000)
    info = await store.put_bytes("obj/a.jpg", data)
    assert (info.key, info.size) == ("obj/a.jpg", 5000)
    head = await store.head("obj/a.jpg")
    assert head is not None and head.size == 5000 and head.etag
    assert head.content_type == "image/jpeg"
    assert await _collect(store.read("obj/a.jpg")) == data
    await store.delete("obj/a.jpg")
    assert await store.head("obj/a.jpg") is None
    await store.delete("obj/a.jpg")  # missing: not an error


async def test_put_file_and_download(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "src.mp4"
    data = _data(300_000, 1)
    src.write_bytes(data)
    info = await store.put_file("v/1.mp4", src)
    assert info.size == len(data)
    dst = tmp_path / "dst.mp4"
    await store.download_file("v/1.mp4", dst)
    assert dst.read_bytes() == data
    with pytest.raises(ObjectNotFound):
        await store.download_file("v/missing.mp4", tmp_path / "nope")


async def test_read_ranges(store: BlobStore) -> None:
    data = _data(10_000, 2)
    await store.put_bytes("r", data)
    assert await _collect(store.read("r", 100, 199)) == data[100:200]
    assert await _collect(store.read("r", 9_000)) == data[9_000:]
    assert await _collect(store.read("r", 0, 0)) == data[:1]
    assert await _collect(store.read("r", 9_990, 20_000)) == data[9_990:]  # end clamps
    assert await _collect(store.read("r", 10_000)) == b""  # past the end: nothing
    chunks = [c async for c in store.read("r", chunk_size=4096)]
    assert b"".join(chunks) == data and max(len(c) for c in chunks) <= 4096


async def test_list_delete_prefix_copy(store: BlobStore) -> None:
    for key in ("work/1/7/a.mp4", "work/1/7/hls/x.ts", "work/1/70/b.mp4", "renditions/1/a.mp4"):
        await store.put_bytes(key, key.encode())
    assert await store.list_keys("work/1/7/") == ["work/1/7/a.mp4", "work/1/7/hls/x.ts"]
    assert await store.list_keys("work/1/7") == [
        "work/1/7/a.mp4",
        "work/1/7/hls/x.ts",
        "work/1/70/b.mp4",
    ]
    await store.copy("work/1/7/a.mp4", "renditions/1/b.mp4")
    assert await _collect(store.read("renditions/1/b.mp4")) == b"work/1/7/a.mp4"
    assert await store.delete_prefix("work/1/7/") == 2
    assert await store.list_keys("work/") == ["work/1/70/b.mp4"]
    assert await store.delete_prefix("nothing/") == 0
    assert sorted(await store.list_keys("")) == [
        "renditions/1/a.mp4",
        "renditions/1/b.mp4",
        "work/1/70/b.mp4",
    ]


# multipart uploads
async def test_multipart_roundtrip(store: BlobStore) -> None:
    key = "sources/1/2/n/source"
    parts_data = [_data(PART, 10), _data(PART, 11), _data(1234, 12)]
    upload_id = await store.create_multipart(key)
    infos = {}
    for n in (3, 1, 2):  # any order
        infos[n] = await _write_part(store, key, upload_id, n, parts_data[n - 1])
        assert infos[n] == PartInfo(
            n, len(parts_data[n - 1]), hashlib.md5(parts_data[n - 1]).hexdigest()
        )
    listed = await store.list_parts(key, upload_id)
    assert listed == [infos[1], infos[2], infos[3]]
    uploads = await store.list_multipart_uploads("sources/")
    assert [(k, u) for k, u, _ in uploads] == [(key, upload_id)]
    assert abs(uploads[0][2] - time.time()) < 60
    await store.complete_multipart(key, upload_id, listed)
    await store.complete_multipart(key, upload_id, listed)  # idempotent once done
    head = await store.head(key)
    assert head is not None and head.size == 2 * PART + 1234
    assert await _collect(store.read(key)) == b"".join(parts_data)
    assert (
        await _collect(store.read(key, PART - 2, PART + 1))
        == b"".join(parts_data)[PART - 2 : PART + 2]
    )
    assert await store.list_multipart_uploads("sources/") == []


async def test_aborted_writer_leaves_no_part(store: BlobStore) -> None:
    key = "k/aborted"
    upload_id = await store.create_multipart(key)
    await _write_part(store, key, upload_id, 1, _data(PART, 20))
    writer = await store.open_part(key, upload_id, 2, PART, PART)
    await asyncio.to_thread(writer.write, _data(50_000, 21))
    await writer.abort()
    assert [p.number for p in await store.list_parts(key, upload_id)] == [1]
    # the part can be sent again afterwards
    again = await _write_part(store, key, upload_id, 2, _data(PART, 22))
    assert [p.number for p in await store.list_parts(key, upload_id)] == [1, 2]
    assert again.size == PART


async def test_abort_multipart(store: BlobStore) -> None:
    key = "k/abort"
    upload_id = await store.create_multipart(key)
    await _write_part(store, key, upload_id, 1, _data(1000, 30))
    await store.abort_multipart(key, upload_id)
    assert await store.list_parts(key, upload_id) == []
    assert await store.list_multipart_uploads("k/") == []
    await store.abort_multipart(key, upload_id)  # gone already: fine
    assert await store.head(key) is None


async def test_presign_flags(store: BlobStore) -> None:
    await store.put_bytes("p", b"x")
    url = store.presign_get("p", int(time.time()) + 60)
    assert (url is not None) == store.presigns
    assert store.min_part_size in (1, PART)


# OSS only
async def test_oss_presign_get_before_and_after_expiry(
    oss_store: OssBlobStore, oss_server: OssServer
) -> None:
    await oss_store.put_bytes("videos/a.mp4", b"movie")
    url = oss_store.presign_get("videos/a.mp4", int(time.time()) + 60, filename="我的 clip.mp4")
    assert url is not None and "/pfx/videos/a.mp4?" in url
    r = await asyncio.to_thread(requests.get, url, timeout=5)
    assert (r.status_code, r.content) == (200, b"movie")
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E6%88%91" in r.headers["Content-Disposition"]
    oss_server.clock_offset = 120
    r = await asyncio.to_thread(requests.get, url, timeout=5)
    assert r.status_code == 403 and b"Request has expired." in r.content


async def test_oss_presign_part_put(oss_store: OssBlobStore) -> None:
    upload_id = await oss_store.create_multipart("direct/part")
    url = oss_store.presign_part_put("direct/part", upload_id, 1, int(time.time()) + 60)
    assert url is not None
    r = await asyncio.to_thread(requests.put, url, data=b"abc", timeout=5)
    assert r.status_code == 200
    assert await oss_store.list_parts("direct/part", upload_id) == [
        PartInfo(1, 3, hashlib.md5(b"abc").hexdigest())
    ]


async def test_oss_presign_post(oss_store: OssBlobStore, oss_server: OssServer) -> None:
    url, fields = oss_store.presign_post("direct/9/", 1000, int(time.time()) + 60)
    files = {"file": ("a.mp4", b"posted", "video/mp4")}
    form = fields | {"key": "pfx/direct/9/abc/source"}
    r = await asyncio.to_thread(requests.post, url, data=form, files=files, timeout=5)
    assert r.status_code == 201, r.text
    assert await _collect(oss_store.read("direct/9/abc/source")) == b"posted"
    form = fields | {"key": "pfx/direct/10/abc/source"}
    r = await asyncio.to_thread(requests.post, url, data=form, files=files, timeout=5)
    assert r.status_code == 403


async def test_oss_commit_checks_md5(oss_store: OssBlobStore) -> None:
    upload_id = await oss_store.create_multipart("md5")
    writer = await oss_store.open_part("md5", upload_id, 1, 0, 3)
    await asyncio.to_thread(writer.write, b"abc")
    with pytest.raises(StorageError):
        await writer.commit(hashlib.md5(b"abd").hexdigest())
    writer = await oss_store.open_part("md5", upload_id, 2, 0, 3)
    await asyncio.to_thread(writer.write, b"abc")
    info = await writer.commit(None)  # no caller MD5: OSS's ETag is the part's MD5
    assert info.etag == hashlib.md5(b"abc").hexdigest()


async def test_oss_part_retried_from_spool(oss_store: OssBlobStore, oss_server: OssServer) -> None:
    upload_id = await oss_store.create_multipart("retry")
    oss_server.fail_next(op="UploadPart", status=500, count=2)
    info = await _write_part(oss_store, "retry", upload_id, 1, _data(PART, 40))
    assert info.etag == hashlib.md5(_data(PART, 40)).hexdigest()
    assert oss_server.ops("UploadPart") == ["UploadPart"] * 3
    oss_server.fail_next(op="UploadPart", drop=True, after_bytes=1000)
    await _write_part(oss_store, "retry", upload_id, 2, _data(PART, 41))
    assert oss_server.part_numbers(upload_id) == [1, 2]


async def test_oss_survives_restart_mid_part(
    oss_store: OssBlobStore, oss_server: OssServer
) -> None:
    upload_id = await oss_store.create_multipart("restart")
    data = _data(4 * PART, 50)
    writer = await oss_store.open_part("restart", upload_id, 1, 0, len(data))
    await asyncio.to_thread(writer.write, data[:PART])
    await asyncio.sleep(0.1)
    oss_server.stop()  # the stream breaks mid-body; the writer keeps spooling
    await asyncio.to_thread(writer.write, data[PART:])
    oss_server.start()
    info = await writer.commit(hashlib.md5(data).hexdigest())
    assert info.size == len(data)
    assert oss_server.part_numbers(upload_id) == [1]


async def test_oss_down_is_storage_error(oss_store: OssBlobStore, oss_server: OssServer) -> None:
    await oss_store.put_bytes("up", b"1")
    upload_id = await oss_store.create_multipart("down")
    oss_server.stop()
    with pytest.raises(StorageError) as info:
        await oss_store.head("up")
    assert info.value.status == 503
    with pytest.raises(StorageError):
        await _collect(oss_store.read("up"))
    with pytest.raises(StorageError):
        await _write_part(oss_store, "down", upload_id, 1, b"abc")
    oss_server.start()
    assert await oss_store.head("up") is not None
    assert await oss_store.list_parts("down", upload_id) == []


async def test_oss_read_missing_is_object_not_found(oss_store: OssBlobStore) -> None:
    with pytest.raises(ObjectNotFound):
        await _collect(oss_store.read("missing"))
    with pytest.raises(ObjectNotFound):
        await oss_store.copy("missing", "dst")


async def test_oss_prefix_is_isolated(oss_store: OssBlobStore, oss_server: OssServer) -> None:
    await oss_store.put_bytes("a", b"1")
    assert oss_server.object_keys() == ["pfx/a"]
    other = _oss_store(oss_server, prefix="")
    try:
        await other.put_bytes("b", b"2")
        assert await oss_store.list_keys("") == ["a"]
        assert sorted(await other.list_keys("")) == ["b", "pfx/a"]
    finally:
        await other.close()


async def test_oss_sts_token(oss_server: OssServer) -> None:
    oss_server.add_credentials("STS.k", "sts-s", "tok")
    sts = OssBlobStore(
        oss_server.endpoint, OSS_BUCKET, "STS.k", "sts-s", security_token="tok", backoff=0.01
    )
    try:
        await sts.put_bytes("s", b"sts")
        url = sts.presign_get("s", int(time.time()) + 60)
        assert url is not None
        r = await asyncio.to_thread(requests.get, url, timeout=5)
        assert r.content == b"sts"
    finally:
        await sts.close()


async def test_local_delete_leaves_no_empty_folders(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "local")
    try:
        await store.put_bytes("media/7/1-a/360p.mp4", b"x")
        await store.put_bytes("media/7/1-a/hls/seg1.m4s", b"y")
        await store.put_bytes("media/8/keep.mp4", b"z")
        await store.delete("media/7/1-a/360p.mp4")
        assert (store.objects / "media/7/1-a/hls").is_dir()  # still holds a file
        await store.delete_prefix("media/7/")
        assert not (store.objects / "media/7").exists()
        assert (store.objects / "media/8/keep.mp4").is_file()
        await store.delete("media/8/keep.mp4")
        assert not (store.objects / "media").exists() and store.objects.is_dir()
        # A folder pruned by a delete comes back for the next write.
        await store.put_bytes("media/8/again.mp4", b"w")
        assert await _collect(store.read("media/8/again.mp4")) == b"w"
    finally:
        await store.close()
