"""Which network addresses an HTTP connector may reach: the SSRF guard.

A connector's URL is typed by an operator, and a redirect or a next link is
chosen by the remote server; either could point the worker at the cloud
metadata service (169.254.169.254), a database on the loopback interface or
an internal admin page. So a host name is resolved once, every address is
checked, and the connection is made to a checked address only (never to
the name again, which a DNS rebinding could answer differently).

Refused unless allowed: loopback, private, link-local, multicast, reserved,
unspecified and other non-global ranges, IPv4 and IPv6, including IPv4
addresses embedded in IPv6 (``::ffff:10.0.0.1``, 6to4, NAT64). A deployment
with internal sources allows them by host name or network (see
``IMPORTHUB_HTTP_ALLOWED_HOSTS``).

No Django here: any transport can call ``resolve_checked()``.
"""

import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Checked in this order, so that 169.254.169.254 is "link-local" and
# 240.0.0.1 "reserved" rather than merely "private" (both are, to Python).
_CATEGORIES = (
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_reserved", "a reserved"),
    ("is_private", "a private"),
)


class AddressRefused(Exception):
    """The host resolves to no address a connector may reach."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be reached by default, or None for a public one."""
    for address in filter(None, (embedded_ipv4(ip), ip)):
        for attribute, what in _CATEGORIES:
            if getattr(address, attribute):
                return f"{ip} is {what} address"
        if not address.is_global:
            return f"{ip} is not a public address"
    return None


class AllowList:
    """Hosts and networks an operator allows despite their addresses.

    An entry is an IP network (``10.0.0.0/8``, ``127.0.0.1``), a host name
    (``data.internal``) or a domain with a leading dot (``.corp.example``,
    which allows its subdomains).
    """

    def __init__(self, entries: Iterable[str] = ()):
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        self.domains: list[str] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("."):
                    self.domains.append(entry)
                else:
                    self.hosts.add(entry.rstrip("."))

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(d) for d in self.domains)

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip, embedded_ipv4(ip)]
        return any(
            candidate is not None
            and candidate.version == network.version
            and candidate in network
            for candidate in candidates
            for network in self.networks
        )


def resolve_checked(
    host: str, port: int, *, allowed: AllowList | Iterable[str] = ()
) -> list[str]:
    """The addresses of ``host`` a connection may go to, in resolver order.

    Addresses that are not allowed are left out; a host allowed by name
    keeps them all. Connect to these addresses, not to ``host``.

    Raises:
        AddressRefused: no address of the host may be reached.
        OSError: the name does not resolve (``socket.gaierror``).
    """
    if not isinstance(allowed, AllowList):
        allowed = AllowList(allowed)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    problems: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = sockaddr[0].split("%", 1)[0]
        ip = ipaddress.ip_address(text)
        problem = address_problem(ip)
        if problem and not (allowed.allows_host(host) or allowed.allows_address(ip)):
            problems.append(problem)
        elif text not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        reasons = "; ".join(dict.fromkeys(problems)) or "it has no address"
        raise AddressRefused(
            f"{host} may not be reached: {reasons}. To allow it, add the host "
            f"or its network to IMPORTHUB_HTTP_ALLOWED_HOSTS."
        )
    return addresses
