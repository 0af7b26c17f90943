"""The upload calls: limits, init, parts, resume, and direct-to-storage parts (a part of Client,
kept apart so client.py stays readable)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from vasset_client.models import DirectUrls, InitResult, Limits, PartResult, ResumeState
from vasset_client.transport import Body, SignedTransport

__all__ = ["UploadCalls", "b64name"]


def b64name(name: str) -> str:
    """Base64 of the UTF-8 of a name or text, as the API takes them in a query."""
    return base64.b64encode(name.encode("utf-8")).decode("ascii")


class UploadCalls(SignedTransport):
    """Client's upload calls (use Client)."""

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
        ttl: int | None = None,
        template: str | None = None,
        playback_policy: str | None = None,
        replace: int | None = None,
    ) -> InitResult:
        """POST /video/upload/init; with `hash`, an instant upload when the server has the bytes.

        ttl: seconds after which the server deletes the video and all its objects; template
        (with auto): the transcode template of the automatic transcode; replace: upload a new
        source for that vid, which keeps playing its old renditions until the new ones are in.
        """
        params: dict[str, Any] = {"fn": b64name(name), "fsize": fsize, "psize": psize}
        if hash:
            params["hash"] = hash.lower()
        if auto:
            params["auto"] = 1
        if priority:
            params["priority"] = int(priority)
        if direct:
            params["direct"] = 1
        if ttl is not None:
            params["ttl"] = int(ttl)
        if template is not None:
            params["template"] = template
        if playback_policy is not None:
            params["playback_policy"] = playback_policy
        if replace is not None:
            params["replace"] = int(replace)
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
