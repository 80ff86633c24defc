"""Reverse DNS of sending addresses: PTR, forward confirmation, HELO match.

A mailbox provider accepts a sending address when its PTR names a host
whose A/AAAA records include that address again (forward-confirmed reverse
DNS), and likes it best when that name is also the HELO. Lookups go through
dnspython with the resolver the user names (tests: a DNS server on
loopback), and are cached for the run: a fleet shares names.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
import dns.reversename

from provision_mta.nameserver import resolver_for

OK = "ok"
NO_PTR = "no PTR"
NOT_CONFIRMED = "PTR not confirmed"
HELO_MISMATCH = "HELO differs from PTR"
DNS_FAILED = "DNS lookup failed"


@dataclass
class AddressCheck:
    address: str
    ptr_names: list[str] = field(default_factory=list)
    confirmed_names: list[str] = field(default_factory=list)
    outcome: str = OK
    detail: str = ""


def _name(text: str) -> str:
    return text.rstrip(".").lower()


class DnsChecker:
    """Answers "does this address have good reverse DNS for this HELO?"."""

    def __init__(self, nameservers: list[tuple[str, int]] | None = None, timeout: float = 3.0) -> None:
        self.resolver = resolver_for(nameservers or [])
        self.resolver.lifetime = timeout
        self._cache: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def _lookup(self, name: str, rdtype: str) -> list[str]:
        key = (name, rdtype)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
            values = [_name(rdata.to_text()) for rdata in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            values = []
        with self._lock:
            self._cache[key] = values
        return values

    def check(self, address: str, helo_name: str) -> AddressCheck:
        result = AddressCheck(address)
        try:
            result.ptr_names = self._lookup(dns.reversename.from_address(address).to_text(), "PTR")
            if not result.ptr_names:
                result.outcome = NO_PTR
                return result
            wanted = ipaddress.ip_address(address)
            for name in result.ptr_names:
                forward = self._lookup(name, "A") + self._lookup(name, "AAAA")
                if any(ipaddress.ip_address(value) == wanted for value in forward):
                    result.confirmed_names.append(name)
                elif not result.detail:
                    result.detail = f"{name} resolves to {', '.join(forward) or 'nothing'}"
        except (dns.exception.DNSException, ValueError) as exc:
            result.outcome, result.detail = DNS_FAILED, f"{type(exc).__name__}: {exc}".rstrip(": ")
            return result
        if not result.confirmed_names:
            result.outcome = NOT_CONFIRMED
        elif _name(helo_name) not in result.confirmed_names:
            result.outcome = HELO_MISMATCH
            result.detail = f"HELO {helo_name or '(none)'}, PTR {', '.join(result.confirmed_names)}"
        else:
            result.detail = ""
        return result
