"""The address guard: every spelling of a refused address is refused, public ones pass."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regressops.alerts.addresses import (
    BlockedAddress,
    blocked_reason,
    check_host,
    checked_addresses,
    literal_address,
    resolve,
)

REFUSED_V4 = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "192.0.2.0/24", "198.18.0.0/15",
]  # fmt: skip
REFUSED_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "::/128"]

refused_v4 = st.one_of(*(st.ip_addresses(network=n) for n in REFUSED_V4))
refused_v6 = st.one_of(*(st.ip_addresses(network=n) for n in REFUSED_V6))
public_v4 = st.ip_addresses(v=4).filter(lambda ip: ip.is_global and not ip.is_multicast)


def spellings(ip: ipaddress.IPv4Address, form: int) -> str:
    """``ip`` written in one of the forms the system resolver reads as that address."""
    a, b, c, d = ip.packed
    n = int(ip)
    return [
        str(ip),
        str(n),  # one decimal number
        hex(n),  # one hex number
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",  # dotted hex
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",  # dotted octal
        f"{a}.{n & 0xFFFFFF}",  # a.b (24-bit tail)
        f"{a}.{b}.{n & 0xFFFF}",  # a.b.c (16-bit tail)
        f"::ffff:{ip}",  # IPv4-mapped IPv6
        f"::ffff:{n >> 16:x}:{n & 0xFFFF:x}",
        f"2002:{n >> 16:x}:{n & 0xFFFF:x}::1",  # 6to4
        f"64:ff9b::{ip}",  # NAT64
    ][form]


FORMS = st.integers(0, 10)


@settings(max_examples=300, deadline=None)
@given(ip=refused_v4, form=FORMS)
def test_every_spelling_of_a_refused_ipv4_address_is_refused(
    ip: ipaddress.IPv4Address, form: int
) -> None:
    host = spellings(ip, form)
    literal = literal_address(host)
    assert literal is not None
    assert blocked_reason(literal) is not None
    with pytest.raises(BlockedAddress):
        check_host(host, allow_private=False)
    check_host(host, allow_private=True)


@settings(max_examples=300, deadline=None)
@given(ip=public_v4, form=FORMS)
def test_every_spelling_of_a_public_ipv4_address_passes(
    ip: ipaddress.IPv4Address, form: int
) -> None:
    host = spellings(ip, form)
    check_host(host, allow_private=False)
    literal = literal_address(host)
    assert literal is not None
    if isinstance(literal, ipaddress.IPv6Address):  # mapped, 6to4 or NAT64
        low32 = ipaddress.IPv4Address(int(literal) & 0xFFFF_FFFF)
        literal = literal.ipv4_mapped or literal.sixtofour or low32
    assert literal == ip


@settings(max_examples=100, deadline=None)
@given(ip=refused_v6)
def test_refused_ipv6_addresses_are_refused(ip: ipaddress.IPv6Address) -> None:
    assert blocked_reason(ip) is not None
    with pytest.raises(BlockedAddress):
        check_host(str(ip), allow_private=False)


def _infos(addresses: list[str]) -> list[tuple[object, ...]]:
    family = {4: socket.AF_INET, 6: socket.AF_INET6}
    return [
        (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, 443))
        for a in addresses
    ]


@settings(max_examples=100, deadline=None)
@given(addresses=st.lists(st.one_of(public_v4, refused_v4, refused_v6), min_size=1, max_size=6))
def test_a_name_is_refused_when_any_of_its_addresses_is(
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    texts = [str(a) for a in addresses]
    if any(blocked_reason(a) is not None for a in addresses):
        with pytest.raises(BlockedAddress, match=r"hooks\.example resolves to a"):
            checked_addresses("hooks.example", _infos(texts), allow_private=False)
    else:
        assert checked_addresses("hooks.example", _infos(texts), allow_private=False) == list(
            dict.fromkeys(texts)
        )
    assert checked_addresses("hooks.example", _infos(texts), allow_private=True) == list(
        dict.fromkeys(texts)
    )


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("10.1.2.3", "private"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_reasons(ip: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(ip)) == reason


def test_local_names_are_refused_without_a_lookup() -> None:
    for host in ("localhost", "LOCALHOST.", "api.localhost"):
        with pytest.raises(BlockedAddress, match="loopback name"):
            check_host(host, allow_private=False)
    check_host("hooks.example.com", allow_private=False)  # a name: checked once resolved


def test_resolve_checks_what_the_resolver_answers() -> None:
    assert asyncio.run(resolve("127.0.0.1", 80, allow_private=True)) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        asyncio.run(resolve("0x7f000001", 80, allow_private=False))
