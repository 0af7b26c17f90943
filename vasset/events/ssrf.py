"""SSRF checks of webhook targets: at registration and again before every delivery.

A target is an http(s) URL without credentials whose host is a name or an address literal.
Unless the host is on VASSET_WEBHOOK_ALLOW_HOSTS (exact, case-insensitive), it is resolved
once and every address it resolves to must be public (vasset/net.py); the delivery then
connects to one of exactly those addresses, so a name that answers differently the next time
(DNS rebinding) cannot steer it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Collection

import httpx

from vasset import errors
from vasset.net import Resolver, host_list, ip_literal, is_public, system_resolver

MAX_URL = 2048  # webhook_endpoint.url
#: Seconds one resolution may take before the target counts as unresolvable.
RESOLVE_TIMEOUT = 5.0
_HOST_NAME = re.compile(r"^(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_-]{1,63})*\.?$")


def parse_url(raw: str) -> httpx.URL:
    """The URL's form: http(s), a host name or address, no credentials (else InvalidWebhookUrl)."""
    if len(raw) > MAX_URL:
        raise errors.InvalidWebhookUrl(f"url is longer than {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise errors.InvalidWebhookUrl("url contains whitespace or control characters")
    # The client's own parser for checking and for connecting: no parser differential.
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError):
        raise errors.InvalidWebhookUrl("url is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise errors.InvalidWebhookUrl("url must be http:// or https://")
    if url.userinfo or "@" in url.netloc.decode("ascii", "replace"):
        raise errors.InvalidWebhookUrl("credentials in url are not accepted")
    host = url.raw_host.decode("ascii", "replace").lower()
    if not host:
        raise errors.InvalidWebhookUrl("url has no host")
    if ip_literal(host) is None and not _HOST_NAME.match(host):
        raise errors.InvalidWebhookUrl(f"url host {host!r} is not a host name or an IP address")
    return url


def is_allowed(url: httpx.URL, allow_hosts: str | Collection[str]) -> bool:
    """Whether the URL's host is on the allow-list (exact, case-insensitive)."""
    allow = (
        host_list(allow_hosts) if isinstance(allow_hosts, str) else {h.lower() for h in allow_hosts}
    )
    host = url.raw_host.decode("ascii", "replace").lower()
    names = {host, url.host.lower()}
    if ":" in host:  # an IPv6 literal may be listed with or without its brackets
        names.add(f"[{host}]")
    return bool(names & allow)


async def resolve_target(
    url: str | httpx.URL,
    allow_hosts: str | Collection[str],
    resolver: Resolver = system_resolver,
) -> tuple[str, int, list[str]]:
    """(host, port, addresses) of a webhook target; InvalidWebhookUrl when it may not be used.

    Every address must be public unless the host is allow-listed; connect only to these.
    """
    parsed = parse_url(url) if isinstance(url, str) else parse_url(str(url))
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allowed = is_allowed(parsed, allow_hosts)
    literal = ip_literal(host)
    if literal is not None:
        addrs = [literal]
    else:
        try:
            answers = await asyncio.wait_for(resolver(host, port), RESOLVE_TIMEOUT)
            addrs = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        except (OSError, ValueError, TimeoutError):
            addrs = []
        if not addrs:
            raise errors.InvalidWebhookUrl(f"cannot resolve {host}")
    if not allowed:
        # Every answer must be public, not just the one used: a mixed answer is an attack sign.
        refused = [a for a in addrs if not is_public(a)]
        if refused:
            what = "is" if literal is not None else f"resolves to {refused[0]}, which is"
            raise errors.InvalidWebhookUrl(
                f"{host} {what} a non-public address (private, loopback, link-local or"
                " reserved) and is not on VASSET_WEBHOOK_ALLOW_HOSTS"
            )
    return host, port, list(dict.fromkeys(str(a) for a in addrs))
