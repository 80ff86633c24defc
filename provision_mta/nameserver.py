"""``IP[:PORT]`` of a DNS server, as --dns-server takes it, and a resolver
that asks only those servers.

The MTA owns this module (its wheel holds nothing of ``provision``); the
controller's report and onboarding use it too, and turn
:class:`NameserverError` into their own one-line error at the CLI.
"""

from __future__ import annotations

import ipaddress

import dns.resolver

__all__ = ["NameserverError", "parse_nameserver", "resolver_for"]


class NameserverError(ValueError):
    """A --dns-server value that is not IP[:PORT]."""


def resolver_for(nameservers: list[tuple[str, int]]) -> dns.resolver.Resolver:
    """A resolver asking exactly these (address, port) servers; none: the system's (resolv.conf)."""
    if not nameservers:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host for host, _ in nameservers]
    resolver.nameserver_ports = dict(nameservers)
    return resolver


def parse_nameserver(text: str) -> tuple[str, int]:
    """``IP`` or ``IP:PORT`` (IPv6 as ``[IP]:PORT``)."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(text, port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise NameserverError(f"--dns-server {text!r}: expected an IP address, optionally with :PORT") from None
    return host, port


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NameserverError(f"--dns-server {text!r}: the port must be a number from 1 to 65535")
    return int(port_text)
