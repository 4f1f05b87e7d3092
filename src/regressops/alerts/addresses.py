"""The server-side request forgery guard: which addresses a webhook may reach.

A webhook's host is resolved, *every* address it resolves to is checked, and the request then
goes to the checked address (never to the name again, which a rebinding DNS server could answer
differently the second time). Without ``allow_private`` these are refused: loopback, private
(RFC 1918, unique local), link-local (cloud metadata lives at 169.254.169.254), shared (CGNAT),
multicast, unspecified and reserved addresses — also when wrapped in an IPv6 form (IPv4-mapped,
IPv4-compatible, 6to4, NAT64, Teredo). Numeric forms such as ``2130706433``, ``0x7f.1`` or
``127.1`` resolve like any name, so they are checked too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

from regressops.errors import ConfigError
from regressops.reasons import Reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class BlockedAddress(ConfigError):
    """A webhook's host is, or resolves to, an address the guard refuses."""

    default_reason = Reason.PRIVATE_ADDRESS


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (and that a gateway may forward to)."""
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield from ip.teredo
    if ip in _IPV4_COMPATIBLE:
        yield ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)


def _nat64(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted without ``allow_private``, else None.

    Parameters
    ----------
    ip : IPv4Address or IPv6Address

    Returns
    -------
    str or None
        ``"loopback"``, ``"link-local"``, ``"multicast"``, ``"unspecified"``, ``"private"`` or
        ``"reserved"`` (not globally routable); None for a public unicast address.
    """
    views: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv4-mapped or NAT64 address is judged by its IPv4 address (Python counts their
        # IPv6 blocks as reserved)
        wrapped = ip.ipv4_mapped or _nat64(ip)
        views = [wrapped] if wrapped is not None else [ip, *_embedded_ipv4(ip)]
    for view in views:
        for reason, hit in (
            ("unspecified", view.is_unspecified),
            ("loopback", view.is_loopback),
            ("link-local", view.is_link_local),
            ("multicast", view.is_multicast),
            ("private", view.is_private),
            ("reserved", view.is_reserved or not view.is_global),
        ):
            if hit:
                return reason
    return None


def _parse(address: str) -> IPAddress:
    return ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for (``127.1`` → 127.0.0.1), else None.

    Uses the system resolver with ``AI_NUMERICHOST``: no DNS query, the same reading of numeric
    forms that a connection would use.
    """
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return _parse(str(infos[0][4][0])) if infos else None


def check_host(host: str, *, allow_private: bool) -> None:
    """Refuse, without any DNS query, a host that is a local name or a refused numeric address.

    Raises
    ------
    BlockedAddress
        ``host`` is ``localhost`` or a number naming a refused address.
    """
    if allow_private:
        return
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise BlockedAddress(f"{host} is a loopback name")
    literal = literal_address(host)
    reason = blocked_reason(literal) if literal is not None else None
    if reason is not None:
        raise BlockedAddress(f"{host} is a {reason} address")


def checked_addresses(
    host: str, infos: list[tuple[object, ...]], *, allow_private: bool
) -> list[str]:
    """The distinct addresses of ``getaddrinfo`` results, each checked by the guard.

    Raises
    ------
    BlockedAddress
        Any one address is refused (a name resolving to a public and a private address is
        refused as a whole).
    """
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # type: ignore[index]
    if not allow_private:
        for address in addresses:
            reason = blocked_reason(_parse(address))
            if reason is not None:
                raise BlockedAddress(f"{host} resolves to a {reason} address ({address})")
    return addresses


async def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses once every one has passed the guard.

    Parameters
    ----------
    host : str
        Name or numeric address.
    port : int
        TCP port (for the resolver).
    allow_private : bool
        Skip the guard.

    Returns
    -------
    list of str
        Addresses in the resolver's order; connect to these, not to the name.

    Raises
    ------
    BlockedAddress
        ``host`` is refused (see :func:`checked_addresses`).
    OSError
        The name does not resolve.
    """
    check_host(host, allow_private=allow_private)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host} resolves to no address")
    return checked_addresses(host, list(infos), allow_private=allow_private)
