"""The resumable uploader against a real server: parallel parts, instant upload, retries, resume."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from vasset_client import Uploader, errors

from tests.sdk.conftest import make_client, random_file

KIB = 1024
PSIZE = 100 * KIB


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_parallel_upload_then_instant_upload(client, tmp_path, state_dir):
    f = random_file(tmp_path / "movie.mp4", 3 * 1024 * KIB + 123)
    seen: list[tuple[int, int]] = []
    up = Uploader(
        client,
        f,
        part_size=PSIZE,
        parallel=4,
        state_dir=state_dir,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    result = up.run()
    assert result.md5 == md5_of(f) and result.size == f.stat().st_size
    assert not result.instant and not result.resumed and result.parts_sent == 31
    info = client.mediainfo(result.vid)
    assert (info.md5, info.file_size, info.source_name) == (md5_of(f), f.stat().st_size, f.name)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == f.stat().st_size
    assert all(t == f.stat().st_size for _, t in seen) and len(seen) > 31
    assert list(state_dir.iterdir()) == []  # the state file is gone

    seen.clear()
    again = Uploader(client, f, state_dir=state_dir, on_progress=lambda d, t: seen.append((d, t)))
    second = again.run()
    assert second.instant and second.vid != result.vid and second.parts_sent == 0
    assert seen[-1] == (f.stat().st_size, f.stat().st_size)
    assert client.status(second.vid).status == "uploaded"


def test_small_file_is_one_part(client, tmp_path, state_dir):
    f = random_file(tmp_path / "tiny.mp4", 1000)
    result = Uploader(client, f, state_dir=state_dir).run()
    assert result.parts_sent == 1 and result.md5 == md5_of(f)


@pytest.mark.parametrize("client_retries", [0, 3])
def test_transient_503s_are_retried(server, app_creds, proxy, tmp_path, state_dir, client_retries):
    f = random_file(tmp_path / "r.mp4", 600 * KIB)
    proxy.fail_puts = 3
    with make_client(proxy.url, app_creds, retries=client_retries) as c:
        result = Uploader(c, f, part_size=PSIZE, parallel=2, state_dir=state_dir).run()
    assert result.md5 == md5_of(f)
    assert len(proxy.puts(injected=True)) == 3
    stored = [r for r in proxy.puts(injected=False) if r.status == 200]
    assert sorted(int(r.params["pseq"]) for r in stored) == list(range(1, 7))
    # every attempt was signed anew
    randoms = [r.params["random"] for r in proxy.puts()]
    assert len(set(randoms)) == len(randoms)


def test_crash_then_resume_sends_only_missing_parts(server, app_creds, proxy, tmp_path, state_dir):
    f = random_file(tmp_path / "crash.mp4", 1024 * KIB)
    size = f.stat().st_size
    lock = threading.Lock()

    def crash_after_half(done: int, total: int) -> None:
        with lock:
            if done >= total // 2:
                raise KeyboardInterrupt("simulated crash")

    with make_client(server.url, app_creds) as c:
        with pytest.raises(KeyboardInterrupt):
            Uploader(
                c, f, part_size=PSIZE, parallel=1, state_dir=state_dir, on_progress=crash_after_half
            ).run()
        [state_file] = list(state_dir.iterdir())
        assert "upload_id" in state_file.read_text()

    seen: list[int] = []
    with make_client(proxy.url, app_creds) as c:
        result = Uploader(
            c, f, part_size=PSIZE, state_dir=state_dir, on_progress=lambda d, t: seen.append(d)
        ).run()
    assert result.resumed and result.md5 == md5_of(f)
    [resume] = [r for r in proxy.records if r.path == "/video/upload/resume"]
    missing = resume.answer["missing"]
    assert 0 < len(missing) < 11
    assert sorted(int(r.params["pseq"]) for r in proxy.puts()) == missing
    assert result.parts_sent == len(missing)
    assert "/video/upload/init" not in [r.path for r in proxy.records]  # no re-hash, no init
    assert seen[0] >= (11 - len(missing)) * PSIZE - PSIZE and seen[-1] == size
    assert seen == sorted(seen)
    assert list(state_dir.iterdir()) == []


def test_expired_upload_in_state_starts_over(client, tmp_path, state_dir):
    f = random_file(tmp_path / "e.mp4", 250 * KIB)
    up = Uploader(client, f, part_size=PSIZE, state_dir=state_dir)
    up._size = f.stat().st_size
    up._save_state(f.stat().st_mtime_ns, "gone-upload-id", PSIZE, md5_of(f), None)
    assert len(list(state_dir.iterdir())) == 1
    hashed = []
    up.on_hash_progress = lambda d, t: hashed.append(d)
    result = up.run()
    assert hashed == []  # the saved MD5 was reused
    assert not result.resumed and result.upload_id != "gone-upload-id"
    assert result.md5 == md5_of(f) and result.parts_sent == 3
    assert list(state_dir.iterdir()) == []


def test_completed_upload_counts_as_success(client, tmp_path, state_dir):
    f = random_file(tmp_path / "c.mp4", 210 * KIB)
    data = f.read_bytes()
    init = client.init_upload(f.name, len(data), PSIZE)
    assert init.upload_id
    for i in range(3):
        answer = client.upload_part(init.upload_id, i + 1, data[i * PSIZE : (i + 1) * PSIZE])
    assert answer.completed
    # a part re-sent after completion (its answer lost) gets the completion answer: the vid
    up = Uploader(client, f, part_size=PSIZE, state_dir=state_dir)
    up._size = len(data)
    assert up._send_all(init.upload_id, PSIZE, [2])[0] == answer.vid
    # a state file naming the completed upload: resume says uploaded, nothing is sent
    up = Uploader(client, f, part_size=PSIZE, state_dir=state_dir)
    up._size = len(data)
    up._save_state(f.stat().st_mtime_ns, init.upload_id, PSIZE, None, None)
    result = up.run()
    assert result.vid == answer.vid and result.resumed and result.parts_sent == 0


def test_deleted_upload_is_a_typed_failure(client, tmp_path, state_dir):
    f = random_file(tmp_path / "d.mp4", 220 * KIB)
    init = client.init_upload(f.name, f.stat().st_size, PSIZE)
    assert init.upload_id and init.vid
    client.delete(init.vid)
    up = Uploader(client, f, part_size=PSIZE, state_dir=state_dir)
    up._size = f.stat().st_size
    up._save_state(f.stat().st_mtime_ns, init.upload_id, PSIZE, None, None)
    with pytest.raises(errors.VassetError) as info:
        up._send_all(init.upload_id, PSIZE, [1, 2, 3])
    assert isinstance(info.value, errors.UploadAborted | errors.UploadNotFound)


def test_file_is_streamed_not_read_whole(client, tmp_path, state_dir, monkeypatch):
    f = random_file(tmp_path / "s.mp4", 400 * KIB)
    biggest = 0
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def seek(self, n):
            return self.fh.seek(n)

        def read(self, n=-1):
            nonlocal biggest
            assert n is not None and n > 0
            data = self.fh.read(n)
            biggest = max(biggest, len(data))
            return data

    def spy_open(path, mode="r", *a, **kw):
        fh = real_open(path, mode, *a, **kw)
        return Spy(fh) if os.fspath(path) == os.fspath(f) else fh

    monkeypatch.setattr("vasset_client.uploader.open", spy_open, raising=False)
    monkeypatch.setattr("vasset_client.part_reader.open", spy_open, raising=False)
    result = Uploader(client, f, part_size=200 * KIB, state_dir=state_dir).run()
    assert result.md5 == md5_of(f) and 0 < biggest <= 1 << 20
