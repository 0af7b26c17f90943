"""Importing a source from a URI (POST /video/transcode?src=): allow-listed, SSRF-safe.

http(s) sources come only from hosts on VASSET_IMPORT_ALLOW_HOSTS and only from the address
that was checked: every hop (redirects included) resolves the name once, refuses private,
loopback, link-local or otherwise special addresses, and connects to that very address while
the Host header and the TLS server name stay the name, so a name that answers differently the
next time (DNS rebinding) cannot steer the connection. There is a size and a time limit.

oss:// sources must name the storage bucket and a key (relative to the storage prefix) outside
vasset's own layout, or inside it but owned by the calling app. Every refusal of an oss://
source, a missing object included, is the same InvalidSource answer, so nothing tells another
app's keys apart from keys that do not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpx
import structlog

from vasset import errors
from vasset.db import transaction
from vasset.net import Resolver, host_list, is_public, system_resolver
from vasset.storage import keys
from vasset.transcode.queue import Job
from vasset.videos import repository as videos
from vasset.videos.state import VideoStatus

if TYPE_CHECKING:
    from vasset.context import Context

log = structlog.get_logger(__name__)

MAX_REDIRECTS = 5
#: The one answer to every oss:// source that may not be read, whatever the reason.
OSS_REFUSED = "src does not name an object that can be imported"
_MAX_KEY_BYTES = 1023  # OSS's own limit
_KEY_CHARS_REFUSED = re.compile(r"[\x00-\x1f\x7f\\]")


class ImportRefused(errors.InvalidSource):
    """The source URI is not allowed (scheme, host, address, key)."""

    permanent = True


def allowed_hosts(setting: str) -> set[str]:
    """The allow-list from its comma-separated setting."""
    return host_list(setting)


def check_http_uri(uri: str, allow: set[str]) -> httpx.URL:
    """Validate an http(s) src's form and host; its addresses are checked when fetching."""
    # One parser (the client's own) for checking and connecting: no parser differential.
    try:
        url = httpx.URL(uri)
    except (httpx.InvalidURL, ValueError):
        raise ImportRefused("src is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise ImportRefused("src must be an http(s):// or oss:// URI")
    names = {url.host.lower(), url.raw_host.decode("ascii").lower()} - {""}
    if not names or not names & allow:
        raise ImportRefused(f"host {url.host or '?'} is not on the import allow-list")
    if url.userinfo:
        raise ImportRefused("credentials in src are not accepted")
    return url


def oss_key(uri: str, bucket: str) -> str:
    """The store key an oss://BUCKET/KEY src names; refuses other buckets and unsafe keys."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed "[" in the bucket part
        raise ImportRefused(OSS_REFUSED) from None
    if not bucket or parts.netloc != bucket or parts.query or parts.fragment:
        raise ImportRefused(OSS_REFUSED)
    try:
        key = unquote(parts.path[1:], errors="strict")
    except UnicodeDecodeError:
        raise ImportRefused(OSS_REFUSED) from None
    # Refused rather than normalized: "a/../sources/.." must never reach another app's key.
    if (
        not key
        or len(key.encode()) > _MAX_KEY_BYTES
        or _KEY_CHARS_REFUSED.search(key)
        or any(segment in ("", ".", "..") for segment in key.split("/"))
    ):
        raise ImportRefused(OSS_REFUSED)
    return key


async def _may_read(ctx: Context, app_id: int, key: str) -> bool:
    """Whether an app may import key: anything outside vasset's layout, or its own objects."""
    owner = keys.layout_owner(key)
    if owner is None:
        return True
    kind, ident = owner
    if kind == "app":
        return ident == app_id
    async with transaction(ctx.engine) as conn:
        return ident > 0 and await videos.get_video(conn, ident, app_id) is not None


async def _readable_oss_key(ctx: Context, app_id: int, src: str) -> str:
    """The key of an oss:// src this app may import and that exists, else ImportRefused."""
    key = oss_key(src, ctx.settings.oss_bucket_name)
    allowed = await _may_read(ctx, app_id, key)
    # HEAD whatever the verdict, so a refused key costs what a missing one does.
    info = await ctx.store.head(key)
    if not allowed or info is None:
        raise ImportRefused(OSS_REFUSED)
    if info.size > ctx.settings.import_max_size:
        raise errors.EntityTooLarge("src is larger than the import limit")
    return key


async def check_source(ctx: Context, app_id: int, src: str) -> None:
    """Request-time check of a src for app_id (the worker checks again before fetching)."""
    if _scheme(src) == "oss":
        await _readable_oss_key(ctx, app_id, src)
    else:
        url = check_http_uri(src, allowed_hosts(ctx.settings.import_allow_hosts))
        try:
            literal = ipaddress.ip_address(url.host)
        except ValueError:
            return  # a name: resolved and checked when fetching
        _public_or_refuse(url.host, [literal])


def _scheme(src: str) -> str:
    """The lower-case scheme of a URI, without parsing the rest (which may not parse)."""
    return src.partition(":")[0].lower()


async def pinned_address(host: str, port: int, resolver: Resolver = system_resolver) -> str:
    """Resolve host once and refuse any non-public answer; the connection uses the result."""
    try:
        return _public_or_refuse(host, [ipaddress.ip_address(host)])
    except ValueError:
        pass  # a name, not an address literal
    try:
        answers = await resolver(host, port)
        addrs = [ipaddress.ip_address(a) for a in answers]
    except (OSError, ValueError) as exc:
        raise ImportRefused(f"cannot resolve {host}") from exc
    if not addrs:
        raise ImportRefused(f"cannot resolve {host}")
    return _public_or_refuse(host, addrs)


def _public_or_refuse(host: str, addrs: list) -> str:
    # Every answer must be public, not just the one used: a mixed answer is an attack sign.
    if not all(is_public(a) for a in addrs):
        raise ImportRefused(f"{host} resolves to a non-public address")
    return str(addrs[0])


def _default_transport() -> httpx.AsyncBaseTransport:
    # No keep-alive: a connection made for one name must not carry a request for another name
    # that happens to have the same address (its TLS session was verified for the first).
    return httpx.AsyncHTTPTransport(
        retries=0, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def fetch_http(
    uri: str,
    target: Path,
    allow: set[str],
    max_size: int,
    timeout: float,
    *,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Download uri into target (every hop checked and pinned); returns the MD5 hex."""
    deadline = time.monotonic() + timeout
    url = check_http_uri(uri, allow)
    # trust_env off: a proxy from the environment would resolve the name again by itself.
    async with httpx.AsyncClient(
        transport=transport or _default_transport(),
        follow_redirects=False,
        timeout=30,
        trust_env=False,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            name = url.raw_host.decode("ascii")
            port = url.port or (443 if url.scheme == "https" else 80)
            ip = await pinned_address(name, port, resolver)
            request = client.build_request(
                "GET",
                url.copy_with(host=ip),
                headers={"Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": name} if url.scheme == "https" else {},
            )
            resp = await client.send(request, stream=True)
            try:
                if resp.is_redirect:
                    url = check_http_uri(str(url.join(resp.headers.get("location", ""))), allow)
                    continue
                return await _save(resp, target, max_size, deadline)
            finally:
                await resp.aclose()
    raise ImportRefused("too many redirects")


async def _save(resp: httpx.Response, target: Path, max_size: int, deadline: float) -> str:
    """Stream a 200 answer into target within the size and time limits; returns the MD5 hex."""
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


async def import_source(ctx: Context, job: Job, workdir: Path) -> None:
    """Fetch the job's src into storage and mark the video uploaded (idempotent per attempt)."""
    async with transaction(ctx.engine) as conn:
        video = await videos.get_video(conn, job.video_id)
    if video is None:
        raise errors.VideoNotFound()
    if video.status != VideoStatus.UPLOADING and video.storage_uri:
        return  # fetched by an earlier attempt
    src = job.options["src"]
    s = ctx.settings
    target = workdir / "import"
    scheme = _scheme(src)
    if scheme == "oss":
        # Checked again here: the job may predate the rules, or the object may be gone.
        await ctx.store.download_file(await _readable_oss_key(ctx, job.app_id, src), target)
        md5 = await asyncio.to_thread(_md5_file, target)
    else:
        md5 = await fetch_http(
            src, target, allowed_hosts(s.import_allow_hosts), s.import_max_size, s.import_timeout
        )
    key = keys.source_key(job.app_id, job.video_id, keys.new_nonce())
    await ctx.store.put_file(key, target)
    size = target.stat().st_size
    V = VideoStatus
    async with transaction(ctx.engine) as conn:
        # The fetched source is uploaded, and this job's attempt is already under way with it.
        await videos.move_video(
            conn, job.video_id, V.UPLOADING, V.UPLOADED, storage_uri=key, file_size=size, hash=md5
        )
        await videos.move_video(conn, job.video_id, V.UPLOADED, V.TRANSCODE_QUEUED)
        await videos.move_video(conn, job.video_id, V.TRANSCODE_QUEUED, V.TRANSCODING)
    log.info("source_imported", vid=job.video_id, size=size, scheme=scheme)


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            md5.update(block)
    return md5.hexdigest()
