"""What a report holds: per host, per instance, per transport; and its verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from provision.engine.hosts import HostStatus
from provision.report.dns_check import OK
from provision.report.sending_domains import DomainReport


@dataclass
class TransportReport:
    instance: str
    service: str
    address: str
    helo_name: str
    ptr_names: list[str] = field(default_factory=list)
    fcrdns: bool = False
    helo_matches: bool = False
    outcome: str = OK
    detail: str = ""
    # "" when the host and the inventory agree; otherwise what differs.
    inventory: str = ""
    # "" when the MTA that runs this transport is running; otherwise why it cannot send.
    mta: str = ""
    configured: bool | None = None
    """Whether the bound address is configured on the host (ip -o addr); None: not known."""
    warmup: str = ""
    """The address's warm-up stage today, from the inventory's schedule."""

    @property
    def problems(self) -> list[str]:
        found = [f"cannot send: {self.mta}"] if self.mta else []
        found += [] if self.outcome == OK else [f"{self.outcome}" + (f" ({self.detail})" if self.detail else "")]
        if self.configured is False:
            found.append("the address is not configured on the host (ip -o addr): the transport cannot send")
        if self.inventory:
            found.append(self.inventory)
        return found


@dataclass
class CertificateReport:
    path: str
    not_after: str = ""
    days_left: int | None = None
    subject: str = ""
    problem: str = ""


@dataclass
class InstanceReport:
    name: str
    config_directory: str
    queue: int | None = None
    deferred: int | None = None
    problem: str = ""
    running: bool | None = None
    """Its master process runs (None: not known)."""
    enabled: bool = True


@dataclass
class HostReport:
    host: str
    status: HostStatus = HostStatus.OK
    drift: list[str] = field(default_factory=list)
    drift_known: bool = False
    instances: list[InstanceReport] = field(default_factory=list)
    transports: list[TransportReport] = field(default_factory=list)
    certificates: list[CertificateReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mta: str = ""
    """The state of the mail system the inventory puts here: "running", "not installed",
    "not running: NAME, ..." (its instances that should run and do not), or "" (none expected)."""

    @property
    def mta_ok(self) -> bool:
        return self.mta in ("", "running")

    @property
    def problems(self) -> list[str]:
        found = list(self.errors)
        if self.mta == "not installed":
            # A stopped instance is a problem of that instance, and of each of its transports, below.
            found.append("Postfix is not installed, and the inventory applies the postfix role")
        if self.drift:
            found.append(f"drift: {len(self.drift)} item(s) differ from the inventory")
        found += [f"{c.path}: {c.problem}" for c in self.certificates if c.problem]
        found += [f"{i.name}: {i.problem}" for i in self.instances if i.problem]
        for transport in self.transports:
            found += [f"{transport.instance}/{transport.service} {transport.address}: {p}" for p in transport.problems]
        return found


@dataclass
class Report:
    generated_at: str
    resolver: str
    hosts: list[HostReport]
    domains: list[DomainReport] = field(default_factory=list)

    @property
    def problem_count(self) -> int:
        return sum(len(host.problems) for host in self.hosts) + sum(len(domain.problems) for domain in self.domains)

    def summary(self) -> dict[str, int]:
        transports = [t for host in self.hosts for t in host.transports]
        return {
            "hosts": len(self.hosts),
            "hosts_with_problems": sum(1 for host in self.hosts if host.problems),
            "unreachable": sum(1 for host in self.hosts if host.status == "unreachable"),
            "drifted": sum(1 for host in self.hosts if host.drift),
            "transports": len(transports),
            "transports_ok": sum(1 for t in transports if not t.problems),
            "problems": self.problem_count,
            "domains": len(self.domains),
            "domains_ok": sum(1 for domain in self.domains if not domain.problems),
        }

    def to_dict(self) -> dict[str, Any]:
        hosts = []
        for host in self.hosts:
            entry = asdict(host)
            entry["problems"] = host.problems
            for transport, data in zip(host.transports, entry["transports"], strict=True):
                data["problems"] = transport.problems
            hosts.append(entry)
        return {
            "generated_at": self.generated_at,
            "resolver": self.resolver,
            "summary": self.summary(),
            "hosts": hosts,
            "domains": [asdict(domain) for domain in self.domains],
        }
