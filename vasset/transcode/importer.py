"""Importing a source from a URI (POST /video/transcode?src=): allow-listed, SSRF-safe.

http(s) sources are fetched only from hosts on VASSET_IMPORT_ALLOW_HOSTS, never from private,
loopback, link-local or otherwise special addresses (checked on the resolved address, and again
on every redirect), with a size and a time limit. oss:// sources must name the configured
bucket and are read through the BlobStore.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx
import structlog

from vasset import errors
from vasset.context import Context
from vasset.db import transaction
from vasset.storage import keys
from vasset.transcode.queue import Job
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

log = structlog.get_logger(__name__)

MAX_REDIRECTS = 5


class ImportRefused(errors.InvalidParameter):
    """The source URI is not allowed (scheme, host, address)."""

    code = "InvalidSource"
    permanent = True


def allowed_hosts(setting: str) -> set[str]:
    """The allow-list from its comma-separated setting."""
    return {h.strip().lower() for h in setting.split(",") if h.strip()}


def check_uri(uri: str, allow: set[str], bucket: str | None) -> tuple[str, str]:
    """Validate a source URI's form; returns (scheme, host-or-key). Addresses are checked later."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "oss":
        if not bucket or parsed.netloc != bucket or not parsed.path.strip("/"):
            raise ImportRefused("oss:// sources must name a key in the configured bucket")
        return scheme, parsed.path.lstrip("/")
    if scheme not in ("http", "https"):
        raise ImportRefused("src must be an http(s):// or oss:// URI")
    host = (parsed.hostname or "").lower()
    if not host or host not in allow:
        raise ImportRefused(f"host {host or '?'} is not on the import allow-list")
    if parsed.username or parsed.password:
        raise ImportRefused("credentials in src are not accepted")
    return scheme, host


def public_address(host: str, port: int) -> str:
    """Resolve host and refuse any private, loopback, link-local or reserved address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ImportRefused(f"cannot resolve {host}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if (
            addr.is_private
            or addr.is_loopback
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        ):
            raise ImportRefused(f"{host} resolves to a non-public address")
    return infos[0][4][0]


async def fetch_http(uri: str, target: Path, allow: set[str], max_size: int, timeout: float) -> str:
    """Download uri into target (re-checking every redirect); returns the MD5 hex."""
    deadline = time.monotonic() + timeout
    url = uri
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _, host = check_uri(url, allow, None)
            parsed = urlparse(url)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            await asyncio.to_thread(public_address, host, port)
            async with client.stream("GET", url) as resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers.get("location", ""))
                    continue
                if resp.status_code != 200:
                    raise errors.InvalidParameter(f"src answered HTTP {resp.status_code}")
                declared = int(resp.headers.get("content-length") or 0)
                if declared > max_size:
                    raise errors.EntityTooLarge("src is larger than the import limit")
                md5 = hashlib.md5()
                size = 0
                with open(target, "wb") as fh:
                    async for chunk in resp.aiter_bytes(1 << 20):
                        size += len(chunk)
                        if size > max_size:
                            raise errors.EntityTooLarge("src is larger than the import limit")
                        if time.monotonic() > deadline:
                            raise errors.ServiceUnavailable("the import took too long")
                        md5.update(chunk)
                        fh.write(chunk)
                return md5.hexdigest()
    raise ImportRefused("too many redirects")


async def import_source(ctx: Context, job: Job, workdir: Path) -> None:
    """Fetch the job's src into storage and mark the video uploaded (idempotent per attempt)."""
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, job.video_id)
    if video is None:
        raise errors.VideoNotFound()
    if video.status != VideoStatus.UPLOADING.value and video.storage_uri:
        return  # fetched by an earlier attempt
    src = job.options["src"]
    s = ctx.settings
    scheme, where = check_uri(src, allowed_hosts(s.import_allow_hosts), s.oss_bucket or None)
    target = workdir / "import"
    if scheme == "oss":
        await ctx.store.download_file(where, target)
        md5 = await asyncio.to_thread(_md5_file, target)
    else:
        md5 = await fetch_http(
            src, target, allowed_hosts(s.import_allow_hosts), s.import_max_size, s.import_timeout
        )
    key = keys.source_key(job.app_id, job.video_id, keys.new_nonce())
    await ctx.store.put_file(key, target)
    size = target.stat().st_size
    async with transaction(ctx.engine) as conn:
        await videos.update_video(conn, job.video_id, storage_uri=key, file_size=size, hash=md5)
        await videos.transition(conn, job.video_id, VideoStatus.UPLOADED.value)
        await videos.transition(conn, job.video_id, VideoStatus.TRANSCODE_QUEUED.value)
        await videos.transition(conn, job.video_id, VideoStatus.TRANSCODING.value)
    log.info("source_imported", vid=job.video_id, size=size, scheme=scheme)


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            md5.update(block)
    return md5.hexdigest()
