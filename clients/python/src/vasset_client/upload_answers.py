"""What the API's answers about an upload mean to the uploader: restart it, it is complete,
or these parts again (a part of Uploader, kept apart so uploader.py stays readable)."""

from __future__ import annotations

from vasset_client import errors
from vasset_client.client import Client
from vasset_client.models import PartResult

__all__ = ["Completed", "Restart", "check_alive", "complete_direct"]


class Restart(Exception):
    """The upload is gone on the server (expired): start a new one."""


class Completed(Exception):
    """Some answer said the upload is complete."""

    def __init__(self, vid: int | None, md5: str | None = None) -> None:
        super().__init__(vid)
        self.vid = vid
        self.md5 = md5


def complete_direct(client: Client, upid: str) -> PartResult:
    """POST complete for a direct upload; parts it names as missing or wrong come back."""
    try:
        return client.complete_upload(upid)
    except errors.UploadCompleted as exc:
        raise Completed(exc.vid) from None
    except (errors.InvalidState, errors.InvalidPartSize) as exc:
        redo = exc.body.get("missing") or exc.body.get("parts")
        if not redo:
            raise
        return PartResult(upload_id=upid, missing=[int(p) for p in redo], raw=exc.body)


def check_alive(client: Client, upid: str) -> None:
    """Raise Restart or Completed when the API says the upload is gone or done."""
    try:
        info = client.resume(upid)
    except errors.UploadNotFound:
        raise Restart() from None
    if info.status == "uploaded" and info.vid is not None:
        raise Completed(info.vid)
    if info.status != "uploading":
        raise errors.UploadAborted(f"the upload is {info.status}", status=409, body=info.raw)
