"""What receivers check about a sending domain: SPF, DKIM, DMARC, MTA-STS, TLS-RPT.

For every domain the fleet signs mail for (the dkim role's keys), against the
DNS server the user names:

- **SPF**: the record exists and parses, its DNS lookups stay within the
  limit of 10 (RFC 7208 4.6.4), and it authorizes every address that the
  domain's hosts bind in a transport (``include:``, ``redirect=``, ``a``,
  ``mx``, ``ip4``, ``ip6`` expanded);
- **DKIM**: each selector's TXT record holds the public key the host has;
- **DMARC**: a record exists and parses, its policy is shown;
- **MTA-STS** and **TLS-RPT**: where a record is published, it parses.

Parsing, include expansion and lookup counting are checkdmarc's (a
maintained library that takes our resolver); the evaluation of "does this
address pass" walks its expanded tree. Each problem says what to publish.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.resolver

from provision.roles.dkim import parse_record, record_name, txt_value

SPF_LOOKUP_LIMIT = 10


@dataclass
class Sender:
    """A transport that sends for the domain: the address receivers see."""

    host: str
    transport: str
    address: str


@dataclass
class DomainKey:
    """A DKIM key a host signs the domain's mail with."""

    host: str
    selector: str
    algorithm: str
    public_pem: str | None


@dataclass
class AddressCheck:
    host: str
    transport: str
    address: str
    result: str = "none"
    """pass, fail, softfail, neutral, none, or "unknown" (exists/ptr not evaluated)."""
    via: str = ""


@dataclass
class SelectorCheck:
    host: str
    selector: str
    name: str
    outcome: str
    expected: str = ""
    published: str = ""


@dataclass
class DomainReport:
    domain: str
    spf_record: str = ""
    spf_lookups: int | None = None
    addresses: list[AddressCheck] = field(default_factory=list)
    selectors: list[SelectorCheck] = field(default_factory=list)
    dmarc_record: str = ""
    dmarc_policy: str = ""
    mta_sts_record: str = ""
    tls_rpt_record: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _txt(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def _mechanism(address: str) -> str:
    return f"ip{ipaddress.ip_address(address).version}:{address}"


def evaluate(parsed: dict[str, Any] | None, address: str) -> tuple[str, str]:
    """SPF's result for ``address`` from checkdmarc's expanded record, and the term that decided it."""
    if not parsed:
        return "none", ""
    wanted = ipaddress.ip_address(address)
    undecided = False
    for term in parsed.get("mechanisms", []):
        kind, value, action = term.get("mechanism"), str(term.get("value", "")), term.get("action", "pass")
        prefix = ""
        if kind in ("a", "mx") and "/" in value:
            value, _, prefix = value.partition("/")
        if kind in ("ip4", "ip6"):
            try:
                matched = wanted in ipaddress.ip_network(value, strict=False)
            except ValueError:
                matched = False
        elif kind == "a":
            matched = _any_match(term.get("addresses") or [], wanted, prefix)
        elif kind == "mx":
            addresses = [a for host in term.get("hosts") or [] for a in host.get("addresses") or []]
            matched = _any_match(addresses, wanted, prefix)
        elif kind == "include":
            inner, via = evaluate(term.get("parsed"), address)
            matched = inner == "pass"
            if matched:
                return action, f"include:{value} ({via})"
            undecided = undecided or inner == "unknown"
            continue
        else:  # exists, ptr: need macros or the client's rDNS at the receiver
            undecided = True
            continue
        if matched:
            return action, f"{kind}:{term.get('value')}"
    redirect = parsed.get("redirect")
    if redirect:
        inner, via = evaluate(redirect.get("parsed"), address)
        return inner, f"redirect={redirect.get('domain')} ({via})"
    if undecided:
        return "unknown", "exists or ptr terms are not evaluated here"
    qualifier = parsed.get("all") or "neutral"
    return str(qualifier), "all" if parsed.get("all") else "no all: neutral"


def _any_match(addresses: list[str], wanted: Any, prefix: str) -> bool:
    for text in addresses:
        try:
            network = ipaddress.ip_network(f"{text}/{prefix}" if prefix else text, strict=False)
        except ValueError:
            continue
        if wanted in network:
            return True
    return False


def _with_mechanisms(record: str, mechanisms: list[str]) -> str:
    """The record with ``mechanisms`` inserted before its all (or redirect), as to publish it."""
    terms = record.split()
    position = next((i for i, t in enumerate(terms) if t.lstrip("+-~?").lower() == "all" or t.lower().startswith("redirect=")), len(terms))
    return " ".join([*terms[:position], *mechanisms, *terms[position:]])


class DomainChecker:
    def __init__(self, resolver: dns.resolver.Resolver, timeout: float) -> None:
        self.resolver = resolver
        self.timeout = timeout
        # checkdmarc caches answers per process, keyed by name only (not by resolver):
        # a new report must see DNS as it is now (a fixed zone, another --dns-server).
        # Its one shared cache object, emptied here and nowhere else.
        from checkdmarc.utils import DNS_CACHE

        DNS_CACHE.clear()

    def check(self, domain: str, senders: list[Sender], keys: list[DomainKey]) -> DomainReport:
        report = DomainReport(domain)
        for name, step in (("SPF", self._spf), ("DKIM", self._dkim), ("DMARC", self._dmarc), ("MTA-STS/TLS-RPT", self._transport_security)):
            try:
                step(report, senders, keys)
            except (dns.exception.DNSException, OSError) as exc:
                report.problems.append(f"{name}: DNS lookup failed ({type(exc).__name__}: {exc})")
        return report

    def _spf(self, report: DomainReport, senders: list[Sender], keys: list[DomainKey]) -> None:
        from checkdmarc import spf

        domain = report.domain
        addresses = list(dict.fromkeys(s.address for s in senders))
        suggestion = " ".join(["v=spf1", *(_mechanism(a) for a in addresses), "~all"])
        try:
            found = spf.query_spf_record(domain, resolver=self.resolver, timeout=self.timeout)
        except spf.SPFRecordNotFound:
            report.problems.append(f'SPF: no record; publish TXT at {domain}: "{suggestion}"')
            return
        except spf.SPFError as exc:
            report.problems.append(f'SPF: {exc}; publish one TXT record at {domain}: "{suggestion}"')
            return
        report.spf_record = str(found["record"])
        try:
            parsed = spf.parse_spf_record(
                report.spf_record, domain, ignore_too_many_lookups=True, resolver=self.resolver, timeout=self.timeout
            )
        except spf.SPFError as exc:
            report.problems.append(f'SPF: the record of {domain} does not parse ({exc}); publish instead: "{suggestion}"')
            return
        report.spf_lookups = int(parsed.get("dns_lookups", 0))
        if parsed.get("error") or report.spf_lookups > SPF_LOOKUP_LIMIT:
            # checkdmarc stops expanding at the limit and says so in "error".
            why = str(parsed.get("error") or f"{report.spf_lookups} DNS lookups, more than {SPF_LOOKUP_LIMIT}")
            report.problems.append(
                f"SPF: {why}: receivers answer permerror for every address; replace include:, a and mx terms "
                f'by the addresses they give, such as: "{suggestion}"'
            )
            report.spf_lookups = max(report.spf_lookups, SPF_LOOKUP_LIMIT + 1)
            report.addresses = [AddressCheck(s.host, s.transport, s.address, "permerror", why) for s in senders]
            return
        missing: list[str] = []
        for sender in senders:
            result, via = evaluate(parsed.get("parsed"), sender.address)
            report.addresses.append(AddressCheck(sender.host, sender.transport, sender.address, result, via))
            if result != "pass" and sender.address not in missing:
                missing.append(sender.address)
        if missing:
            fixed = _with_mechanisms(report.spf_record, [_mechanism(a) for a in missing])
            who = ", ".join(f"{a.address} ({a.host}/{a.transport}: {a.result})" for a in report.addresses if a.address in missing)
            report.problems.append(f'SPF: not authorized: {who}; publish at {domain}: "{fixed}"')

    def _dkim(self, report: DomainReport, senders: list[Sender], keys: list[DomainKey]) -> None:
        for key in keys:
            name = record_name({"domain": report.domain, "selector": key.selector})
            if not key.public_pem:
                report.selectors.append(SelectorCheck(key.host, key.selector, name, "no key on the host yet (run provision apply)"))
                report.problems.append(f"DKIM {key.selector}: {key.host} has no key yet: run provision apply, then publish its record")
                continue
            expected = txt_value(key.public_pem)
            published = [t for t in _txt(self.resolver, name) if "p=" in t]
            check = SelectorCheck(key.host, key.selector, name, "ok", expected, published[0] if published else "")
            report.selectors.append(check)
            if not published:
                check.outcome = "no record"
                report.problems.append(f'DKIM {key.selector}: no record; publish TXT at {name}: "{expected}"')
                continue
            try:
                tags = parse_record(published[0])
            except ValueError as exc:
                check.outcome = "does not parse"
                report.problems.append(f'DKIM {key.selector}: the record does not parse ({exc}); publish TXT at {name}: "{expected}"')
                continue
            wanted = parse_record(expected)
            if tags.get("p") != wanted["p"] or tags.get("k", "rsa") != wanted["k"]:
                check.outcome = "does not match the key on the host"
                report.problems.append(
                    f'DKIM {key.selector}: the published key is not the one {key.host} signs with; publish TXT at {name}: "{expected}"'
                )

    def _dmarc(self, report: DomainReport, senders: list[Sender], keys: list[DomainKey]) -> None:
        from checkdmarc import dmarc

        suggestion = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{report.domain}"
        try:
            found = dmarc.get_dmarc_record(report.domain, resolver=self.resolver, timeout=self.timeout)
        except dmarc.DMARCRecordNotFound:
            report.problems.append(
                f'DMARC: no record; publish TXT at _dmarc.{report.domain}: "{suggestion}" (then tighten p= to quarantine or reject)'
            )
            return
        except dmarc.DMARCError as exc:
            report.problems.append(f'DMARC: {exc}; publish TXT at _dmarc.{report.domain}: "{suggestion}"')
            return
        report.dmarc_record = str(found.get("record", ""))
        tags = (found.get("parsed") or {}).get("tags", {})
        report.dmarc_policy = str((tags.get("p") or {}).get("value", ""))
        if report.dmarc_policy == "none":
            report.notes.append("DMARC policy none: receivers only report; move to quarantine or reject once reports are clean")

    def _transport_security(self, report: DomainReport, senders: list[Sender], keys: list[DomainKey]) -> None:
        from checkdmarc import mta_sts, smtp_tls_reporting

        try:
            found = mta_sts.query_mta_sts_record(report.domain, resolver=self.resolver, timeout=self.timeout)
            report.mta_sts_record = str(found["record"])
            mta_sts.parse_mta_sts_record(report.mta_sts_record)
        except mta_sts.MTASTSRecordNotFound:
            pass
        except mta_sts.MTASTSError as exc:
            report.problems.append(f'MTA-STS: {exc}; publish TXT at _mta-sts.{report.domain}: "v=STSv1; id=YYYYMMDD01"')
        try:
            found = smtp_tls_reporting.query_smtp_tls_reporting_record(report.domain, resolver=self.resolver, timeout=self.timeout)
            report.tls_rpt_record = str(found["record"])
            smtp_tls_reporting.parse_smtp_tls_reporting_record(report.tls_rpt_record)
        except smtp_tls_reporting.SMTPTLSReportingRecordNotFound:
            pass
        except smtp_tls_reporting.SMTPTLSReportingError as exc:
            report.problems.append(
                f'TLS-RPT: {exc}; publish TXT at _smtp._tls.{report.domain}: "v=TLSRPTv1; rua=mailto:tls-reports@{report.domain}"'
            )


def sending_domains(
    hosts: list[tuple[str, dict[str, Any], list[tuple[str, str]], dict[str, str | None]]],
) -> dict[str, tuple[list[Sender], list[DomainKey]]]:
    """Per domain, who sends for it and with which keys.

    ``hosts``: (host, its variables, its transports as (name, address), the
    public keys read on it by path). A host sends for every domain it holds a
    DKIM key of, from every address its transports bind.
    """
    from provision.roles.dkim import key_path

    domains: dict[str, tuple[list[Sender], list[DomainKey]]] = {}
    for host, variables, transports, public_keys in hosts:
        for key in variables.get("dkim_keys") or []:
            senders, keys = domains.setdefault(str(key["domain"]).lower().rstrip("."), ([], []))
            keys.append(DomainKey(host, str(key["selector"]), str(key.get("algorithm") or "rsa"), public_keys.get(key_path(key))))
            for name, address in transports:
                if not any(s.host == host and s.transport == name for s in senders):
                    senders.append(Sender(host, name, address))
    return domains


def shared_selectors(domains: dict[str, tuple[list[Sender], list[DomainKey]]]) -> dict[str, list[str]]:
    """Problems of selectors two hosts use: a TXT record can hold only one key."""
    found: dict[str, list[str]] = {}
    for domain, (_senders, keys) in domains.items():
        owners: dict[str, list[str]] = {}
        for key in keys:
            owners.setdefault(key.selector, []).append(key.host)
        for selector, hosts in owners.items():
            if len(hosts) > 1:
                found.setdefault(domain, []).append(
                    f"DKIM {selector}: used by {', '.join(hosts)}, but each host makes its own key: give each host its own selector"
                )
    return found
