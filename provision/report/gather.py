"""Gathers a report: per host, one connection and two round trips.

The first is ``provision check``'s probe (drift, exactly as ``check`` sees
it); the second is the agent's ``report`` operation, which answers with
each Postfix instance's own view of its transports (``postconf -M``,
``-Px``, ``-x``), its queue counts and the certificates' PEM (public data
only). DNS is then checked from the controller, not from the hosts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from concurrent.futures import ThreadPoolExecutor

from provision.agent.protocol import ReportAnswer, ReportRequest
from provision.connectors import connect
from provision.engine.agent_call import call_agent
from provision.engine.converge import ConvergeOptions, converge
from provision.engine.hosts import ConnectionOptions, ConnectorFactory, HostSession, HostTarget, call_hosts
from provision.engine.runner import new_run_id
from provision.errors import RemoteError
from provision.report.dns_check import OK, DnsChecker
from provision.report.expected import PRIMARY, expected_transports, report_certificate_paths, report_key_paths, warmup_stages
from provision.report.model import CertificateReport, HostReport, InstanceReport, Report, TransportReport
from provision.report.postfix_config import transports
from provision.report.sending_domains import DomainReport
from provision.roles.compiler import CompiledHost, Project


def gather(
    project: Project,
    hosts: list[str],
    dns: DnsChecker,
    resolver_label: str,
    forks: int = 10,
    renew_days: int = 30,
    connection: ConnectionOptions | None = None,
    factory: ConnectorFactory = connect,
) -> Report:
    # Every host compiles before any is contacted: a mistake in the inventory
    # stops the report with nothing asked of any host.
    compiled = {host: project.compile(host) for host in hosts}
    run_id = new_run_id()

    public_keys: dict[str, dict[str, str | None]] = {}

    def work(session: HostSession) -> HostReport:
        return _host_report(session, compiled[session.host], dns, renew_days, run_id, public_keys)

    targets = [HostTarget(host, compiled[host].variables, compiled[host].locations, compiled[host].secrets) for host in hosts]
    reports = [
        call.value if call.value is not None else HostReport(call.host, call.status, errors=list(call.errors))
        for call in call_hosts(targets, work, forks=forks, options=connection, factory=factory)
    ]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return Report(now, resolver_label, reports, _domains(compiled, reports, public_keys, dns))


def _domains(
    compiled: dict[str, CompiledHost], reports: list[HostReport], public_keys: dict[str, dict[str, str | None]], dns: DnsChecker
) -> list[DomainReport]:
    """SPF, DKIM, DMARC, MTA-STS and TLS-RPT of every domain a reachable host signs for."""
    from provision.report.sending_domains import DomainChecker, sending_domains, shared_selectors

    entries = [
        (r.host, compiled[r.host].variables, [(t.service, t.address) for t in r.transports], public_keys.get(r.host, {}))
        for r in reports
        if r.host in public_keys
    ]
    domains = sending_domains(entries)
    if not domains:
        return []
    checker = DomainChecker(dns.resolver, float(dns.resolver.lifetime or 3.0))
    shared = shared_selectors(domains)
    with ThreadPoolExecutor(max_workers=min(8, len(domains))) as pool:
        found = list(pool.map(lambda item: checker.check(item[0], *item[1]), sorted(domains.items())))
    for domain in found:
        domain.problems = shared.get(domain.domain, []) + domain.problems
    return found


def _host_report(
    session: HostSession,
    compiled: CompiledHost,
    dns: DnsChecker,
    renew_days: int,
    run_id: str,
    public_keys: dict[str, dict[str, str | None]],
) -> HostReport:
    """Two round trips: check's probe (drift), then what the report reads; DNS from the controller."""
    report = HostReport(session.host)
    options = ConvergeOptions(check=True, run_id=run_id, validate_drift=False)
    # drift as the host's own versions make it (see roles/facts.py)
    checked = converge(session.connector, compiled.desired, options, compiled.secrets, refine=compiled.refine)
    if checked.status.is_error:
        report.status, report.errors = checked.status, list(checked.errors)
        return report
    report.drift_known = True
    report.drift = (
        [f.path for f in checked.files]
        + [f"directory {d}" for d in checked.directories]
        + [f"package {p}" for p in checked.packages]
        + [f"service {s}" for s in checked.services]
        + list(checked.problems)
    )
    request: ReportRequest = {"op": "report", "certificates": report_certificate_paths(compiled), "public_keys": report_key_paths(compiled)}
    answer = call_agent(session.connector, request, 120.0)
    if not answer.get("ok"):
        raise RemoteError(str(answer.get("error")))
    fill_from_answer(report, answer, compiled, dns, renew_days)
    # The DKIM keys' public halves, for the sending domains' checks after every host answered.
    public_keys[session.host] = dict(answer.get("public_keys") or {})
    return report


def fill_from_answer(report: HostReport, answer: ReportAnswer, compiled: CompiledHost, dns: DnsChecker, renew_days: int) -> None:
    running: dict[tuple[str, str], TransportReport] = {}
    for instance in answer["instances"]:
        name = instance["name"]
        entry = InstanceReport(name, instance["config_directory"], problem=instance.get("error", ""))
        entry.running, entry.enabled = instance.get("running"), instance.get("enabled", True)
        queue = instance.get("queue") or {}
        if "count" in queue:
            entry.queue = int(queue["count"])
            entry.deferred = int(queue.get("queues", {}).get("deferred", 0))
        elif queue.get("error"):
            entry.problem = f"queue: {queue['error']}"
        report.instances.append(entry)
        for transport in transports(instance.get("master", ""), instance.get("overrides", ""), instance.get("main", "")):
            assert transport.bind_address is not None
            row = TransportReport(name, transport.service, transport.bind_address, transport.helo_name)
            running[(name, transport.service)] = row
    for (instance_name, service), (address, helo) in expected_transports(compiled.variables).items():
        row_found = running.get((instance_name, service))
        if row_found is None:
            row = TransportReport(instance_name, service, address, helo or "", inventory="in the inventory, not running on the host")
            running[(instance_name, service)] = row
        elif row_found.address != address:
            row_found.inventory = f"the inventory binds {address}"
        elif helo and row_found.helo_name.lower() != helo.lower():
            row_found.inventory = f"the inventory sets HELO {helo}"
    if compiled.variables.get("postfix_transports") is not None:
        wanted = expected_transports(compiled.variables)
        for key, row in running.items():
            if key not in wanted and not row.inventory:
                row.inventory = "running on the host, not in the inventory"
    configured = answer.get("addresses")
    addresses = {str(ipaddress.ip_address(a)) for a in configured} if configured is not None else None
    stages = warmup_stages(compiled.variables)
    for key, row in running.items():
        row.configured = None if addresses is None else str(ipaddress.ip_address(row.address)) in addresses
        row.warmup = stages.get(key, "")
    rows = list(running.values())
    for row, checked in zip(rows, dns.check_all([(row.address, row.helo_name) for row in rows]), strict=True):
        row.ptr_names, row.outcome, row.detail = checked.ptr_names, checked.outcome, checked.detail
        row.fcrdns = bool(checked.confirmed_names)
        row.helo_matches = row.fcrdns and checked.outcome == OK
    _mail_system_verdict(report, compiled, running)
    report.transports = sorted(running.values(), key=lambda r: (r.instance != "postfix", r.instance, r.service))
    report.certificates = [_certificate(path, pem, renew_days) for path, pem in sorted(answer.get("certificates", {}).items())]


def _mail_system_verdict(report: HostReport, compiled: CompiledHost, rows: dict[tuple[str, str], TransportReport]) -> None:
    """Postfix missing, or an instance that should run and does not: its transports cannot send.

    An instance the inventory itself disables (``enabled: false``) is expected
    to be stopped; one the host has that the inventory does not list is judged
    by the host's own multi_instance_enable.
    """
    if "postfix" not in compiled.desired.roles:
        return
    if not report.instances:
        report.mta = "not installed"
        for row in rows.values():
            row.mta = "Postfix is not installed"
        return
    disabled = {i["name"] for i in compiled.variables.get("postfix_instances") or [] if not i.get("enabled", True)}
    stopped = [i for i in report.instances if i.running is False and i.enabled and i.name not in disabled]
    for instance in stopped:
        instance.problem = instance.problem or "not running"
    for row in rows.values():
        if any(row.instance == instance.name for instance in stopped):
            row.mta = f"{'Postfix' if row.instance == PRIMARY else row.instance} is not running"
    report.mta = ("not running: " + ", ".join(i.name for i in stopped)) if stopped else "running"


def _certificate(path: str, pem: str | None, renew_days: int) -> CertificateReport:
    from cryptography import x509

    entry = CertificateReport(path)
    if pem is None:
        entry.problem = "missing on the host"
        return entry
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        entry.problem = "not a PEM certificate"
        return entry
    not_after = cert.not_valid_after_utc
    entry.not_after = not_after.isoformat()
    entry.subject = cert.subject.rfc4514_string()
    entry.days_left = (not_after - dt.datetime.now(dt.UTC)).days
    if entry.days_left < 0:
        entry.problem = f"expired on {not_after.date()}"
    elif entry.days_left < renew_days:
        entry.problem = f"expires in {entry.days_left} days ({not_after.date()})"
    return entry
