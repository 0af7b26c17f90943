"""Resumable, parallel, verified file uploads with a small on-disk state file."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vasset_client import errors
from vasset_client.client import Client
from vasset_client.models import PartResult, UploadResult
from vasset_client.parallel import Stopped, run_parallel
from vasset_client.part_reader import BUFFER_MAX, FileMD5, hash_range, read_part, stream_range
from vasset_client.part_urls import PartUrls
from vasset_client.progress import Progress, ProgressMeter, RatePacer
from vasset_client.resume_state import DEFAULT_STATE_DIR, StateFile
from vasset_client.upload_answers import Completed, Restart, check_alive, complete_direct

__all__ = ["DEFAULT_STATE_DIR", "Uploader", "upload_file"]


class Uploader:
    """Upload one file: instant upload by MD5, else parallel parts, resumable after a crash."""

    def __init__(
        self,
        client: Client,
        path: str | os.PathLike[str],
        part_size: int | None = None,
        parallel: int = 4,
        auto: bool = False,
        priority: int = 0,
        state_dir: str | os.PathLike[str] | None = DEFAULT_STATE_DIR,
        on_progress: Progress | None = None,
        *,
        name: str | None = None,
        part_retries: int = 3,
        max_rate: float | None = None,
        on_hash_progress: Progress | None = None,
        direct: bool = False,
        ttl: int | None = None,
        instant: bool = True,
        replace: int | None = None,
    ) -> None:
        self.client = client
        self.path = Path(path).expanduser().resolve()
        self.part_size = part_size
        self.parallel = max(1, int(parallel))
        self.auto = auto
        self.priority = priority
        self.state_dir = Path(state_dir).expanduser() if state_dir is not None else None
        self.on_progress = on_progress
        self.on_hash_progress = on_hash_progress
        self.name = name or self.path.name
        self.part_retries = max(0, int(part_retries))
        #: Bytes per second across all parts (None: unlimited).
        self.max_rate = max_rate
        self.direct = direct
        #: Seconds after which the server deletes the video (None: the app's default).
        self.ttl = ttl
        #: Hash the file before init so that bytes the server has already are not sent again;
        #: False sends at once, each part with its own MD5 (faster when the network outruns MD5).
        self.instant = instant
        #: Upload a new source for this vid (it plays its old renditions until the new ones).
        self.replace = replace
        self._stop = threading.Event()
        self._meter = ProgressMeter(on_progress)
        self._pacer = RatePacer()
        self._is_direct = False
        self._urls = PartUrls(client)

    @property
    def _size(self) -> int:
        """The file's size (the progress meter's total)."""
        return self._meter.total

    @_size.setter
    def _size(self, value: int) -> None:
        self._meter.total = value

    # public
    def run(self) -> UploadResult:
        """Upload (or resume) the file; returns the uploaded video."""
        st = self.path.stat()
        self._size, mtime_ns = st.st_size, st.st_mtime_ns
        state = self._load_state(mtime_ns)
        md5 = state.get("md5") if state else None
        # instant=False (or a resume without a saved MD5) sends at once and hashes nothing more:
        # every part carries its own MD5, which the server checks, so the stored bytes are the
        # file's bytes part by part; the file's size and mtime, checked again at the end, catch
        # a file that changed in between. (A whole-file MD5 on top would cost a second pass of
        # MD5 over every byte, on the CPU the parts are sent with.)
        hash_first = self.instant and not (state and state.get("upload_id"))
        resumed = False
        upid: str | None = None
        part_size = 0
        missing: list[int] = []
        if state and state.get("upload_id"):
            try:
                info = self.client.resume(state["upload_id"])
            except errors.UploadNotFound:
                info = None
            if info is not None and info.status == "uploaded" and info.vid is not None:
                self._remove_state(mtime_ns)
                self._meter.all_done()
                return self._result(info.vid, info.raw.get("md5") or md5, state["upload_id"], True)
            if info is not None and info.status == "uploading" and info.part_size:
                self._is_direct = bool(state.get("direct"))
                upid, part_size, missing, resumed = (
                    state["upload_id"],
                    info.part_size,
                    list(info.missing),
                    True,
                )
                self._meter.preset(part_size, missing)
        for _attempt in range(3):
            if upid is None:
                limits = self.client.limits()
                part_size = limits.choose_part_size(self._size, self.part_size)
                if md5 is None and hash_first:
                    md5 = self._hash_file()
                init = self.client.init_upload(
                    self.name,
                    self._size,
                    part_size,
                    hash=md5,
                    auto=self.auto,
                    priority=self.priority,
                    direct=self.direct,
                    ttl=self.ttl,
                    replace=self.replace,
                )
                if init.instant and init.vid is not None:
                    self._remove_state(mtime_ns)
                    self._meter.all_done()
                    return self._result(init.vid, init.md5 or md5, None, False, instant=True)
                if not init.upload_id:
                    raise errors.VassetError(f"init answered without an upload_id: {init.raw}")
                upid = init.upload_id
                part_size = init.part_size or part_size
                count = init.part_count or -(-self._size // part_size)
                missing = list(range(1, count + 1))
                self._is_direct = init.direct or init.part_urls is not None
                self._urls.reset(init.part_urls or [])
                self._save_state(mtime_ns, upid, part_size, md5, init.expires_at)
                self._meter.reset()
            try:
                vid, server_md5 = self._send_all(upid, part_size, missing)
            except Restart:
                self._remove_state(mtime_ns)
                upid, resumed = None, False
                continue
            except (errors.UploadAborted, errors.VerificationFailed, errors.FileChanged):
                self._remove_state(mtime_ns)
                raise
            if md5 and server_md5 and server_md5.lower() != md5.lower():
                self._remove_state(mtime_ns)
                raise errors.HashMismatch(
                    f"the server stored MD5 {server_md5}, the file's MD5 is {md5}", status=422
                )
            if md5 is None:
                self._check_unchanged(vid, self._size, mtime_ns)
            self._remove_state(mtime_ns)
            self._meter.all_done()
            return self._result(vid, server_md5 or md5, upid, resumed)
        raise errors.UploadNotFound("the upload kept expiring; giving up", status=404)

    def _check_unchanged(self, vid: int, size: int, mtime_ns: int) -> None:
        """FileChanged (and the video deleted) when the file changed while its parts went out."""
        now = self.path.stat()
        if (now.st_size, now.st_mtime_ns) == (size, mtime_ns):
            return
        self._remove_state(mtime_ns)
        # Parts read before and after the change would make a file that never existed.
        self.client.delete(vid)
        raise errors.FileChanged(f"{self.path} changed while it was uploaded; the video is deleted")

    # parts
    def _send_all(self, upid: str, part_size: int, missing: list[int]) -> tuple[int, str | None]:
        """Send parts until the upload completes; returns (vid, md5)."""
        rounds = 0
        deadline = time.monotonic() + 300
        while True:
            try:
                self._send_parts(upid, part_size, missing)
                if self._is_direct:
                    answer = complete_direct(self.client, upid)
                    if answer.completed:
                        return int(answer.vid or 0), answer.md5
                info = self.client.resume(upid)
            except Completed as done:
                if done.vid is None:
                    info = self.client.resume(upid)
                    return int(info.vid or 0), info.raw.get("md5") or done.md5
                return done.vid, done.md5
            except errors.UploadNotFound:
                raise Restart() from None
            if info.status == "uploaded" and info.vid is not None:
                return info.vid, info.raw.get("md5")
            if info.status != "uploading":
                raise errors.UploadAborted(
                    f"the upload is {info.status}: {info.error}", status=409, body=info.raw
                )
            missing = list(info.missing)
            if missing:
                rounds += 1
                if rounds > 5:
                    raise errors.VassetError(f"parts {missing[:10]} keep going missing")
            elif time.monotonic() > deadline:
                raise errors.UploadInProgress("the server did not finish completing the upload")
            else:
                time.sleep(0.5)  # another request is completing the upload

    def _send_parts(self, upid: str, part_size: int, missing: list[int]) -> None:
        """Send the given parts in parallel; raises Completed when one answer completes it."""
        self._stop.clear()
        if not missing:
            return
        if self._is_direct:
            try:
                self._urls.prefetch(upid, missing)
            except errors.UploadCompleted as exc:
                raise Completed(exc.vid) from None
        answers = run_parallel(
            [functools.partial(self._try_part, upid, part_size, pseq) for pseq in missing],
            self.parallel,
            self._stop,
            "vasset-part",
        )
        for answer in answers:
            if answer is not None and answer.completed:
                raise Completed(answer.vid, answer.md5)

    def _try_part(self, upid: str, part_size: int, pseq: int) -> PartResult | None:
        """One part with retries; None when stopped early."""
        offset = (pseq - 1) * part_size
        length = min(part_size, self._size - offset)
        attempt = 0
        refresh = False
        blocks: list[bytes] | None = None
        while True:
            if self._stop.is_set():
                return None
            try:
                if length <= BUFFER_MAX:
                    # One read per part (kept for its retries), hashed while read.
                    if blocks is None:
                        blocks, digest = read_part(self.path, offset, length)
                    body = functools.partial(self._send, pseq, blocks)
                else:
                    digest = hash_range(self.path, offset, length)
                    body = functools.partial(self._stream, pseq, offset, length)
                if self._is_direct:
                    answer = None
                    url = self._urls.url_for(upid, pseq, force=refresh)
                    etag = self.client.put_part_url(url.url, body, size=length)
                    if etag and etag != digest:
                        raise errors.InvalidDigest(
                            f"storage answered ETag {etag} for part {pseq}, its MD5 is {digest}"
                        )
                else:
                    answer = self.client.upload_part(upid, pseq, body, hash=digest, size=length)
            except errors.UploadCompleted as exc:
                raise Completed(exc.vid) from None
            except errors.UploadNotFound:
                raise Restart() from None
            except (
                errors.NetworkError,
                errors.ServerError,
                errors.Throttled,
                errors.IncompleteBody,
                errors.InvalidDigest,
                errors.Forbidden,
                errors.NotFound,
            ) as exc:
                if isinstance(exc, errors.NotFound):
                    check_alive(self.client, upid)  # storage lost the upload: ask the API why
                refresh = isinstance(exc, errors.Forbidden)  # e.g. an expired part URL
                if attempt >= self.part_retries or self._stop.is_set():
                    raise
                self.client.sleep(self.client.backoff_delay(attempt + 1))
                attempt += 1
                continue
            self._meter.part_done(pseq, length)
            return answer

    def _stream(self, pseq: int, offset: int, length: int) -> Iterator[bytes]:
        """A part too big to hold, streamed from the file."""
        return self._send(pseq, stream_range(self.path, offset, length, self._stop))

    def _send(self, pseq: int, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """The part's blocks as httpx sends them (1 MiB each), paced and counted for progress."""
        sent = 0
        for block in blocks:
            if self._stop.is_set():
                raise Stopped()
            self._pacer.pace(len(block), self.max_rate)
            sent += len(block)
            self._meter.advance(pseq, sent)
            yield block

    def _hash_file(self) -> str:
        """MD5 hex of the whole file, streamed."""
        return FileMD5(self.path, self._size, self.on_hash_progress).compute()

    def _result(
        self,
        vid: int,
        md5: str | None,
        upid: str | None,
        resumed: bool,
        instant: bool = False,
    ) -> UploadResult:
        return UploadResult(
            vid=vid,
            md5=md5,
            size=self._size,
            instant=instant,
            upload_id=upid,
            resumed=resumed,
            parts_sent=self._meter.parts_sent,
        )

    # state file
    @property
    def _state(self) -> StateFile:
        return StateFile(self.state_dir, self.path)

    def state_path(self, mtime_ns: int | None = None) -> Path | None:
        """The state file of this file (absolute path, size, mtime)."""
        if self.state_dir is None:
            return None
        if mtime_ns is None:
            st = self.path.stat()
            self._size, mtime_ns = st.st_size, st.st_mtime_ns
        return self._state.location(self._size, mtime_ns)

    def _load_state(self, mtime_ns: int) -> dict[str, Any] | None:
        return self._state.load(self._size, mtime_ns)

    def _save_state(
        self, mtime_ns: int, upid: str, part_size: int, md5: str | None, expires_at: int | None
    ) -> None:
        self._state.save(
            self._size,
            mtime_ns,
            base_url=self.client.base_url,
            upload_id=upid,
            part_size=part_size,
            md5=md5,
            direct=self._is_direct,
            expires_at=expires_at,
        )

    def _remove_state(self, mtime_ns: int) -> None:
        self._state.remove(self._size, mtime_ns)


def upload_file(client: Client, path: str | os.PathLike[str], **options: Any) -> UploadResult:
    """Upload one file with an Uploader (options as Uploader's)."""
    return Uploader(client, path, **options).run()
