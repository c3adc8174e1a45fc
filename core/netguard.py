"""The SSRF guard for webhook URLs: only public addresses, unless an operator allows a network.

The address that was checked is the one connected to, so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot redirect a delivery inside our network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

Network = IPv4Network | IPv6Network


class UnsafeURL(ValueError):
    pass


class Unresolved(UnsafeURL):
    """The host has no address now: DNS may answer later (not a verdict on the URL)."""


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the vetted IP to connect to

    @property
    def pinned_url(self) -> str:
        """The URL with the vetted address as its host: the connection goes there, so a DNS
        answer that changes after the check cannot redirect it (Host and SNI still name the
        real host: see `host_header`)."""
        parts = urlsplit(self.url)
        netloc = f"[{self.address}]" if ":" in self.address else self.address
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def check_scheme(url: str, *, allow_http: bool) -> tuple[str, str, int]:
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise UnsafeURL(
            "must be an https:// URL" if not allow_http else "must be an http(s):// URL"
        )
    if parts.username or parts.password:
        raise UnsafeURL("must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("has an invalid port") from None
    return parts.scheme, parts.hostname, port


_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
# Never a public destination, whatever Python's `is_global` says of them: SIIT's IPv4-translated
# form (::ffff:0:a.b.c.d, RFC 2765) and the deprecated site-local range (fec0::/10).
_REFUSED_V6 = (IPv6Network("::ffff:0:0:0/96"), IPv6Network("fec0::/10"))


def embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and may be routed to: IPv4-mapped and
    -compatible forms, 6to4 (2002::/16), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and Teredo.
    Each is checked like the IPv4 address itself, so `[64:ff9b::7f00:1]` is loopback."""
    found: list[IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in network for network in _NAT64):
        found.append(low32)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (deprecated compatible form)
        found.append(low32)
    return found


def address_allowed(address: IPv4Address | IPv6Address, allowed: list[Network]) -> bool:
    if any(address in network for network in allowed):
        return True
    if isinstance(address, IPv6Address):
        if any(address in network for network in _REFUSED_V6):
            return False
        embedded = embedded_ipv4(address)
        if embedded:
            return all(address_allowed(inner, allowed) for inner in embedded)
    return address.is_global and not address.is_multicast


def resolve(url: str, *, allow_http: bool, allowed: list[Network]) -> CheckedURL:
    """Resolve the URL's host; every address must be public (or explicitly allowed)."""
    scheme, host, port = check_scheme(url, allow_http=allow_http)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolved(f"host {host} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise Unresolved(f"host {host} does not resolve")
    for address in addresses:
        if not address_allowed(address, allowed):
            raise UnsafeURL(f"points at a private, loopback or link-local address ({address})")
    return CheckedURL(url, scheme, host, port, str(addresses[0]))
