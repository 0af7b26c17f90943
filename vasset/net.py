"""Outbound-address checks shared by every fetch vasset makes for a client (imports, webhooks).

A host a client names is resolved once; every answer must be a globally routable unicast
address (no private, loopback, link-local, multicast, reserved, unspecified or CGNAT address,
nor an IPv6 address that embeds one), and the connection then goes to that checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: (host, port) -> addresses, in preference order; injectable so tests can answer anything.
Resolver = Callable[[str, int], Awaitable[list[str]]]


def host_list(setting: str) -> set[str]:
    """A comma-separated host allow-list, lower-cased."""
    return {h.strip().lower() for h in setting.split(",") if h.strip()}


def is_public(addr: IPAddress) -> bool:
    """Whether addr, and any IPv4 address it embeds, is globally routable unicast."""
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        # Mapped, 6to4, Teredo and NAT64 addresses lead to the IPv4 address inside them.
        candidates += [a for a in (addr.ipv4_mapped, addr.sixtofour) if a is not None]
        if addr.teredo:
            candidates.append(addr.teredo[1])
        if addr in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    # is_global is False for CGNAT (100.64.0.0/10) too, which is_private does not cover.
    return all(
        a.is_global
        and not (
            a.is_private
            or a.is_loopback
            or a.is_link_local
            or a.is_multicast
            or a.is_reserved
            or a.is_unspecified
        )
        for a in candidates
    )


def ip_literal(host: str) -> IPAddress | None:
    """The address a host string spells (brackets of an IPv6 literal allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's addresses for host (getaddrinfo blocks, so it runs in a thread)."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
