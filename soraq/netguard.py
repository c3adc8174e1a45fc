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


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the vetted IP to connect to


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


def address_allowed(address: IPv4Address | IPv6Address, allowed: list[Network]) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def resolve(url: str, *, allow_http: bool, allowed: list[Network]) -> CheckedURL:
    """Resolve the URL's host; every address must be public (or explicitly allowed)."""
    scheme, host, port = check_scheme(url, allow_http=allow_http)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"host {host} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"host {host} does not resolve")
    for address in addresses:
        if not address_allowed(address, allowed):
            raise UnsafeURL(f"points at a private, loopback or link-local address ({address})")
    return CheckedURL(url, scheme, host, port, str(addresses[0]))
