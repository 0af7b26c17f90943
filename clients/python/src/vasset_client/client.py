"""The signed HTTP client: every API call, typed answers, retries with backoff and jitter."""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from vasset_client import errors
from vasset_client.models import (
    STATUSES,
    Deleted,
    DirectUrls,
    InitResult,
    Limits,
    MediaInfo,
    PartResult,
    PlayInfo,
    ResumeState,
    Snapshots,
    TranscodeResult,
    VideoPage,
    VideoStatus,
    VideoSummary,
)
from vasset_client.signing import encode_query, sign_params

__all__ = ["Body", "Client"]

#: A request body: bytes, or a factory of a fresh byte iterator (called once per attempt).
Body = bytes | Callable[[], Iterable[bytes]]

USER_AGENT = "vasset-client-python/0.1"


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """The error body: the API's JSON, or Code/Message of a storage XML error."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    text = response.text
    body: dict[str, Any] = {"message": text[:200]}
    for key, tag in (("code", "Code"), ("message", "Message"), ("request_id", "RequestId")):
        match = re.search(f"<{tag}>([^<]*)</{tag}>", text)
        if match:
            body[key] = match.group(1)
    return body


def _b64name(name: str) -> str:
    return base64.b64encode(name.encode("utf-8")).decode("ascii")


class Client:
    """A signed client of one vasset app; thread-safe, use it as a context manager."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        timeout: float = 60.0,
        retries: int = 4,
        *,
        backoff: float = 0.25,
        max_backoff: float = 10.0,
        max_retry_after: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._prefix = httpx.URL(self.base_url).raw_path.decode("ascii").rstrip("/")
        self.app_key = app_key
        self.app_secret = app_secret
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        #: Seconds added to the local clock when signing (learnt from SignatureExpired).
        self.clock_offset = 0.0
        #: Replaceable for tests: how the client waits between attempts.
        self.sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    # lifecycle
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # signing and transport
    def signed_url(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> str:
        """A freshly signed URL (new timestamp and random) for one request."""
        full_path = self._prefix + path
        pairs = sign_params(
            method.upper(),
            full_path,
            params or {},
            self.app_key,
            self.app_secret,
            timestamp=int(time.time() + self.clock_offset),
        )
        return f"{self.base_url}{path}?{encode_query(pairs)}"

    def _unsigned_url(self, path: str, params: Mapping[str, Any]) -> str:
        pairs = [(k, str(v)) for k, v in params.items() if v is not None]
        return f"{self.base_url}{path}?{encode_query(pairs)}"

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    @staticmethod
    def _retryable(exc: errors.VassetError) -> bool:
        return (
            exc.status >= 500
            or exc.status == 429
            or isinstance(exc, errors.UploadInProgress | errors.Throttled)
        )

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
    ) -> dict[str, Any]:
        """Send one API call with retries (each attempt re-signed); returns the JSON answer."""
        method = method.upper()

        def url() -> str:
            if signed:
                return self.signed_url(method, path, params)
            return self._unsigned_url(path, params or {})

        response = self.send(method, url, content=content, headers=headers, signed=signed)
        return self._json(response)

    def send(
        self,
        method: str,
        url: Callable[[], str],
        *,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = False,
    ) -> httpx.Response:
        """The retry loop: url() gives each attempt's URL; raises typed errors for 4xx/5xx."""
        skew_fixed = False
        attempt = 0
        while True:
            body = content() if callable(content) else content
            try:
                response = self._http.request(method, url(), content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise errors.NetworkError(f"{type(exc).__name__}: {exc}") from exc
                delay = self.backoff_delay(attempt)
            else:
                if response.status_code < 400:
                    return response
                error = errors.from_response(
                    response.status_code, _error_body(response), response.headers
                )
                if (
                    isinstance(error, errors.SignatureExpired)
                    and error.server_time is not None
                    and signed
                    and not skew_fixed
                ):
                    # Our clock is off: sign with the server's time from now on, retry at once.
                    self.clock_offset = error.server_time - time.time()
                    skew_fixed = True
                    continue
                if not self._retryable(error) or attempt >= self.retries:
                    raise error
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None:
                    delay = min(float(retry_after), self.max_retry_after)
                else:
                    delay = self.backoff_delay(attempt)
            attempt += 1
            self.sleep(delay)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise errors.ServerError(
                "the answer is not a JSON object",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return data

    # upload calls
    def limits(self) -> Limits:
        """GET /video/upload/limits: the server's size limits."""
        return Limits.from_dict(self.request("GET", "/video/upload/limits"))

    def init_upload(
        self,
        name: str,
        fsize: int,
        psize: int,
        hash: str | None = None,
        auto: bool = False,
        priority: int = 0,
        direct: bool = False,
    ) -> InitResult:
        """POST /video/upload/init; with `hash`, an instant upload when the server has the bytes."""
        params: dict[str, Any] = {"fn": _b64name(name), "fsize": fsize, "psize": psize}
        if hash:
            params["hash"] = hash.lower()
        if auto:
            params["auto"] = 1
        if priority:
            params["priority"] = int(priority)
        if direct:
            params["direct"] = 1
        return InitResult.from_dict(self.request("POST", "/video/upload/init", params))

    def upload_part(
        self,
        upid: str,
        pseq: int,
        data: Body,
        *,
        hash: str | None = None,
        size: int | None = None,
        token: str | None = None,
    ) -> PartResult:
        """PUT one part; `data` is bytes or a factory of byte iterators (then pass `size`)."""
        headers: dict[str, str] = {"Content-Type": "application/octet-stream"}
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
            hash = hash or hashlib.md5(data).hexdigest()
        elif size is None:
            raise ValueError("size is required when data is a stream factory")
        if size is not None:
            headers["Content-Length"] = str(size)
        params: dict[str, Any] = {"upid": upid, "pseq": pseq, "hash": hash, "token": token}
        answer = self.request(
            "PUT",
            "/video/upload/upload",
            params,
            content=data,
            headers=headers,
            signed=token is None,
        )
        return PartResult.from_dict(answer)

    def upload_range(
        self, upid: str, start: int, data: bytes, total: int, *, token: str | None = None
    ) -> PartResult:
        """PUT a Content-Range slice (whole-file mode); start must be the upload's offset."""
        end = start + len(data) - 1
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{end}/{total}",
        }
        answer = self.request(
            "PUT",
            "/video/upload/upload",
            {"upid": upid, "token": token},
            content=data,
            headers=headers,
            signed=token is None,
        )
        return PartResult.from_dict(answer)

    def resume(self, upid: str, *, token: str | None = None) -> ResumeState:
        """GET /video/upload/resume: the missing parts, or the vid once uploaded."""
        answer = self.request(
            "GET", "/video/upload/resume", {"upid": upid, "token": token}, signed=token is None
        )
        return ResumeState.from_dict(answer)

    # direct-to-storage uploads (OSS only; init with direct=True)
    def direct_part_urls(self, upid: str, pseqs: Sequence[int] | None = None) -> DirectUrls:
        """GET /video/upload/direct/urls: fresh URLs for pseqs, or for every missing part."""
        params: dict[str, Any] = {"upid": upid}
        if pseqs is not None:
            params["pseqs"] = ",".join(str(int(p)) for p in pseqs)
        return DirectUrls.from_dict(self.request("GET", "/video/upload/direct/urls", params))

    def put_part_url(self, url: str, data: Body, size: int | None = None) -> str:
        """PUT a part to its presigned storage URL (unsigned, no Content-Type); returns the ETag."""
        headers: dict[str, str] = {}
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
        elif size is None:
            raise ValueError("size is required when data is a stream factory")
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self.send("PUT", lambda: url, content=data, headers=headers)
        return str(response.headers.get("etag", "")).strip('"').lower()

    def complete_upload(self, upid: str) -> PartResult:
        """POST /video/upload/complete: verify a direct upload's parts and publish the video."""
        return PartResult.from_dict(self.request("POST", "/video/upload/complete", {"upid": upid}))

    # video calls
    def status(self, vid: int) -> VideoStatus:
        """GET /video/status."""
        return VideoStatus.from_dict(self.request("GET", "/video/status", {"vid": vid}))

    def list_videos(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> VideoPage:
        """GET /video/list: one page of this app's videos, newest first."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        return VideoPage.from_dict(self.request("GET", "/video/list", params))

    def iter_videos(
        self, status: str | None = None, page_size: int = 100
    ) -> Iterator[VideoSummary]:
        """Every video of this app, newest first, following the cursors."""
        cursor = None
        while True:
            page = self.list_videos(status=status, limit=page_size, cursor=cursor)
            yield from page.videos
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def mediainfo(self, vid: int) -> MediaInfo:
        """GET /video/mediainfo."""
        return MediaInfo.from_dict(self.request("GET", "/video/mediainfo", {"vid": vid}))

    def delete(self, vid: int) -> Deleted:
        """POST /video/delete: removes the video, its renditions and snapshots."""
        return Deleted.from_dict(self.request("POST", "/video/delete", {"vid": vid}))

    def transcode(
        self,
        vid: int,
        priority: int | None = None,
        definitions: Sequence[str] | str | None = None,
    ) -> TranscodeResult:
        """POST /video/transcode for an uploaded video."""
        if definitions is not None and not isinstance(definitions, str):
            definitions = ",".join(definitions)
        params = {"vid": vid, "priority": priority, "definitions": definitions}
        return TranscodeResult.from_dict(self.request("POST", "/video/transcode", params))

    def transcode_from(
        self, src: str, dst: str | None = None, priority: int | None = None
    ) -> TranscodeResult:
        """POST /video/transcode with a source URI: a new video."""
        params = {"src": src, "dst": dst, "priority": priority}
        return TranscodeResult.from_dict(self.request("POST", "/video/transcode", params))

    def retranscode(self, vid: int) -> TranscodeResult:
        """POST /video/retranscode: renditions are replaced atomically when done."""
        return TranscodeResult.from_dict(self.request("POST", "/video/retranscode", {"vid": vid}))

    def playurl(
        self,
        vid: int,
        definition: str | None = None,
        format: str | None = None,
        expires: int | None = None,
    ) -> PlayInfo:
        """GET /video/playurl: signed, expiring play URLs."""
        params = {"vid": vid, "definition": definition, "format": format, "expires": expires}
        return PlayInfo.from_dict(self.request("GET", "/video/playurl", params))

    def snapshot(self, vid: int, expires: int | None = None) -> Snapshots:
        """GET /video/snapshot: snapshot images (signed, expiring URLs)."""
        params = {"vid": vid, "expires": expires}
        return Snapshots.from_dict(self.request("GET", "/video/snapshot", params))

    def wait(
        self,
        vid: int,
        until: str = "playable",
        timeout: float = 600.0,
        interval: float = 2.0,
        on_status: Callable[[VideoStatus], None] | None = None,
    ) -> VideoStatus:
        """Poll status until the video reaches `until`; raises on upload/transcode failure."""
        if until not in STATUSES or until.endswith("_failed"):
            raise ValueError(f"until must be one of the non-failure statuses, not {until!r}")
        deadline = time.monotonic() + timeout
        pause = min(0.2, interval)
        while True:
            st = self.status(vid)
            if on_status is not None:
                on_status(st)
            if _reached(st, until):
                return st
            if st.status == "upload_failed":
                raise errors.UploadFailed(
                    f"video {vid} failed to upload: {st.error}", body=st.raw, status=0
                )
            if st.status == "transcode_failed":
                raise errors.TranscodeFailed(
                    f"video {vid} failed to transcode: {st.error}", body=st.raw, status=0
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.WaitTimeout(
                    f"video {vid} is {st.status} after {timeout:g} s, not {until}", body=st.raw
                )
            self.sleep(min(pause, left))
            pause = min(interval, pause * 1.5)


def _reached(st: VideoStatus, until: str) -> bool:
    """Whether a status answer is at or past `until` in the lifecycle."""
    if until == "playable":
        return st.playable or st.status == "playable"
    if st.status == until:
        return True
    order = {
        "uploading": 0,
        "uploaded": 1,
        "transcode_queued": 2,
        "transcoding": 3,
        "transcode_succeeded": 4,
        "playable": 5,
    }
    here = order.get(st.status)
    # transcode_failed is past "uploaded" (the bytes are there) but not past any transcode step.
    if st.status == "transcode_failed":
        return until == "uploaded"
    return here is not None and here >= order[until]
