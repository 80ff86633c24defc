"""Reverse DNS of sending addresses: PTR, forward confirmation, HELO match.

A mailbox provider accepts a sending address when its PTR names a host
whose A/AAAA records include that address again (forward-confirmed reverse
DNS), and likes it best when that name is also the HELO. Lookups go through
dnspython with the resolver the user names (tests: a DNS server on
loopback), are cached for the run (a fleet shares names), and run at once
for one host's addresses within one overall timeout; a lookup that gets no
answer names the resolver that was silent.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
# Lookups of one host at once (its transports' addresses).
MAX_PARALLEL_LOOKUPS = 32


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
    """Answers "does this address have good reverse DNS for this HELO?".

    ``timeout`` bounds all the lookups of one :meth:`check_all` together (one
    host's transports): they run at once, each with what is left of it, so a
    silent resolver costs one timeout per host, not one per address.
    """

    def __init__(self, nameservers: list[tuple[str, int]] | None = None, timeout: float = 3.0) -> None:
        self.resolver = resolver_for(nameservers or [])
        self.timeout = timeout
        self._cache: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def _lookup(self, name: str, rdtype: str, deadline: float) -> list[str]:
        key = (name, rdtype)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise dns.exception.Timeout  # the deadline passed before this lookup could start
        try:
            answer = self.resolver.resolve(name, rdtype, search=False, lifetime=remaining)
            values = [_name(rdata.to_text()) for rdata in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            values = []
        with self._lock:
            self._cache[key] = values
        return values

    def check(self, address: str, helo_name: str, deadline: float | None = None) -> AddressCheck:
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        result = AddressCheck(address)
        try:
            result.ptr_names = self._lookup(dns.reversename.from_address(address).to_text(), "PTR", deadline)
            if not result.ptr_names:
                result.outcome = NO_PTR
                return result
            wanted = ipaddress.ip_address(address)
            for name in result.ptr_names:
                forward = self._lookup(name, "A", deadline) + self._lookup(name, "AAAA", deadline)
                if any(ipaddress.ip_address(value) == wanted for value in forward):
                    result.confirmed_names.append(name)
                elif not result.detail:
                    result.detail = f"{name} resolves to {', '.join(forward) or 'nothing'}"
        except dns.exception.Timeout as exc:
            result.outcome, result.detail = DNS_FAILED, f"no answer from {self._servers(exc)} within {self.timeout:g} s"
            return result
        except dns.resolver.NoNameservers as exc:
            result.outcome, result.detail = DNS_FAILED, f"{self._servers(exc)} refused or failed the lookup"
            return result
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

    def check_all(self, pairs: list[tuple[str, str]]) -> list[AddressCheck]:
        """:meth:`check` of each (address, HELO) at once, all within one ``timeout``."""
        if not pairs:
            return []
        deadline = time.monotonic() + self.timeout
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_LOOKUPS, len(pairs))) as pool:
            return list(pool.map(lambda pair: self.check(pair[0], pair[1], deadline), pairs))

    def _servers(self, exc: dns.exception.DNSException) -> str:
        """The resolvers a failed lookup asked (as IP:PORT), or all of them when it never got to ask."""
        asked = [_server(entry) for entry in (getattr(exc, "kwargs", {}) or {}).get("errors") or []]
        if not asked:
            ports = self.resolver.nameserver_ports
            asked = [f"{server}:{ports.get(str(server), self.resolver.port)}" for server in self.resolver.nameservers]
        return ", ".join(dict.fromkeys(asked)) or "the resolver"


def _server(entry: tuple[object, ...]) -> str:
    """An error entry of dnspython (server, tcp, port, exception, answer) as IP:PORT."""
    server, port = str(entry[0]), entry[2]
    server = server.removeprefix("Do53:").split("@")[0]
    return f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
