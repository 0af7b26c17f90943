"""Sending one webhook attempt: to addresses checked against SSRF, pinned, no redirects.

``PinnedResolver`` answers aiohttp only with the addresses ``ssrf.resolve_target`` approved, so
the connection goes where the check looked while Host and TLS SNI keep the name; ``Sender``
checks the target again before every attempt and reads at most READ_LIMIT bytes of the answer.
"""

from __future__ import annotations

import socket

import aiohttp
import httpx
import structlog
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from vasset.events import ssrf
from vasset.net import ip_literal

log = structlog.get_logger(__name__)

READ_LIMIT = 64 << 10  # bytes of an answer read (only its status matters)
LITERALS = 1024  # checked address-literal URLs remembered


class PinnedResolver(AbstractResolver):
    """Resolves a name for a new connection and answers only addresses that pass the check."""

    def __init__(self, allow_hosts: str) -> None:
        self.allow = allow_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The checked addresses of host (InvalidWebhookUrl propagates: nothing is connected)."""
        target = httpx.URL(scheme="http", host=host, port=port)
        _, _, addrs = await ssrf.resolve_target(target, self.allow)
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addrs
        ]

    async def close(self) -> None:
        """Nothing to release."""


class Sender:
    """POSTs to checked, pinned addresses; keeps connections alive between attempts.

    aiohttp, not httpx: measured ~3x less CPU per request (bench/events.py), which is what
    bounds a worker's deliveries per second. Every attempt checks its target again
    (ssrf.resolve_target, which also covers address literals: aiohttp does not resolve
    those); a new connection to a name goes only to addresses PinnedResolver checked, and TLS
    verifies the name and sends it as SNI and Host as usual.
    """

    def __init__(self, allow_hosts: str, timeout: float, connections: int) -> None:
        self.allow = allow_hosts
        self.timeout = timeout
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._literals: dict[str, yarl.URL] = {}  # checked URLs whose host is an address

    @property
    def session(self) -> aiohttp.ClientSession:
        """The one session (made on first use: it binds to the running loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                resolver=PinnedResolver(self.allow),
                use_dns_cache=False,  # every new connection resolves and checks afresh
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No cookies carried from one answer to the next request, no proxy from the
                # environment (it would resolve the name by itself).
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auto_decompress=False,
                skip_auto_headers=("Accept", "Accept-Encoding"),
            )
        return self._session

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """POST body to url; returns the HTTP status. InvalidWebhookUrl: not a safe target."""
        checked = self._literals.get(url)
        if checked is None:
            target = ssrf.parse_url(url)
            await ssrf.resolve_target(target, self.allow)
            # Built from the checked parse, so aiohttp connects to exactly the host checked.
            host = target.raw_host.decode("ascii")
            path, _, query = target.raw_path.decode("ascii").partition("?")
            checked = yarl.URL.build(
                scheme=target.scheme,
                host=f"[{host}]" if ":" in host else host,
                port=target.port,
                path=path,
                query_string=query,
                encoded=True,
            )
            if ip_literal(host) is not None:  # no DNS answer involved: its check cannot change
                if len(self._literals) >= LITERALS:
                    self._literals.clear()
                self._literals[url] = checked
        async with self.session.post(
            checked, data=body, headers=headers, allow_redirects=False
        ) as response:
            read = 0
            while read <= READ_LIMIT:
                chunk = await response.content.readany()
                if not chunk:
                    break
                read += len(chunk)
            return response.status

    async def aclose(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()
