"""A report as a terminal table, JSON, or one self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provision.bundled import templates_dir
from provision.report.model import Report

TEMPLATES = templates_dir()


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


def to_html(report: Report) -> str:
    import jinja2

    # Autoescaped: every value came from a host or from DNS.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True
    )
    return environment.get_template("report.html.j2").render(**report.to_dict())


def write_html(report: Report, path: Path) -> None:
    from provision.atomic import write_atomic

    write_atomic(path, to_html(report).encode())


def print_report(console: Console, report: Report) -> None:
    transports = Table(title="transports: bound address, reverse DNS and HELO", title_justify="left")
    # Names and addresses are never cut; the verdict wraps instead.
    for column in ("host", "instance", "transport", "address", "on host", "HELO", "PTR", "FCrDNS"):
        transports.add_column(column, no_wrap=True)
    transports.add_column("warm-up", overflow="fold")
    transports.add_column("verdict", overflow="fold")
    for host in report.hosts:
        for row in host.transports:
            verdict = "[green]ok[/]" if not row.problems else "[red]" + escape("; ".join(row.problems)) + "[/]"
            transports.add_row(
                host.host,
                row.instance,
                row.service,
                row.address,
                {True: "yes", False: "[red]no[/]", None: "?"}[row.configured],
                escape(row.helo_name),
                escape(", ".join(row.ptr_names)) or "-",
                "yes" if row.fcrdns else "[red]no[/]",
                escape(row.warmup) or "-",
                verdict,
            )
    console.print(transports)
    if report.domains:
        print_domains(console, report)
    hosts = Table(title="hosts", title_justify="left")
    for column in ("host", "status", "drift", "queues", "certificates", "problems"):
        hosts.add_column(column)
    for host in report.hosts:
        drift = "?" if not host.drift_known else (f"[red]{len(host.drift)} drifted[/]" if host.drift else "in sync")
        queues = ", ".join(f"{i.name} {i.queue if i.queue is not None else '?'}" for i in host.instances) or "-"
        soonest = min((c.days_left for c in host.certificates if c.days_left is not None), default=None)
        certs = "-" if not host.certificates else f"{len(host.certificates)}, soonest {soonest} days" if soonest is not None else "?"
        status = host.status if host.status == "ok" else f"[red]{host.status}[/]"
        problems = str(len(host.problems)) if not host.problems else f"[red]{len(host.problems)}[/]"
        hosts.add_row(host.host, status, drift, queues, certs, problems)
    console.print(hosts)
    summary = report.summary()
    colour = "red" if summary["problems"] else "green"
    console.print(
        f"[{colour}]{summary['problems']} problem(s)[/]: {summary['transports_ok']}/{summary['transports']} transports with good rDNS, "
        f"{summary['drifted']} drifted, {summary['unreachable']} unreachable, {summary['hosts']} host(s)"
    )
    for host in report.hosts:
        for problem in host.problems:
            console.print(f"  [red]✗[/] {host.host}: {escape(problem)}", highlight=False)
    for domain in report.domains:
        for problem in domain.problems:
            console.print(f"  [red]✗[/] {domain.domain}: {escape(problem)}", highlight=False, soft_wrap=True)


def print_domains(console: Console, report: Report) -> None:
    """One row per sending domain: what receivers check about it (DNS data, escaped)."""
    table = Table(title="sending domains: SPF, DKIM, DMARC, MTA-STS, TLS-RPT", title_justify="left")
    for column in ("domain", "SPF", "DKIM", "DMARC", "MTA-STS", "TLS-RPT"):
        table.add_column(column, overflow="fold")
    table.add_column("problems", overflow="fold")
    for domain in report.domains:
        passing = sum(1 for a in domain.addresses if a.result == "pass")
        spf = f"{passing}/{len(domain.addresses)} addresses, {domain.spf_lookups} lookups" if domain.spf_record else "[red]none[/]"
        dkim = ", ".join(f"{s.selector} {'ok' if s.outcome == 'ok' else '[red]' + escape(s.outcome) + '[/]'}" for s in domain.selectors)
        table.add_row(
            escape(domain.domain),
            spf,
            dkim or "-",
            f"p={escape(domain.dmarc_policy)}" if domain.dmarc_record else "[red]none[/]",
            "yes" if domain.mta_sts_record else "-",
            "yes" if domain.tls_rpt_record else "-",
            "[green]ok[/]" if not domain.problems else f"[red]{len(domain.problems)}[/]",
        )
    console.print(table)
