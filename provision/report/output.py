"""A report as a terminal table, JSON, or one self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.text import Text

from provision.bundled import templates_dir
from provision.report.model import Report
from provision.views.tables import Column, fitted_table
from provision.views.visible import visible

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


# PTR names shown per row in the terminal; --json and --html carry them all.
SHOWN_PTR_NAMES = 3
# Each column keeps at least this many characters, so that an 80-column
# terminal shows all of them (cells wrap), however long one cell is.
TRANSPORT_COLUMNS = [
    Column("host", 8),
    Column("instance", 8),
    Column("transport", 9),
    Column("address", 7),
    Column("on host", 4),
    Column("HELO", 6),
    Column("PTR", 6),
    Column("FCrDNS", 6),
    Column("warm-up", 7),
    Column("verdict", 10),
]
HOST_COLUMNS = [Column("host", 8), Column("status", 6), Column("MTA", 7), Column("drift", 5), Column("queues", 6)]
HOST_COLUMNS += [Column("certificates", 12), Column("problems", 8)]
DOMAIN_COLUMNS = [Column("domain", 12), Column("SPF", 10), Column("DKIM", 10), Column("DMARC", 6)]
DOMAIN_COLUMNS += [Column("MTA-STS", 7), Column("TLS-RPT", 7), Column("problems", 8)]


def _ptr_cell(names: list[str]) -> Text:
    if not names:
        return Text("-")
    shown = ", ".join(names[:SHOWN_PTR_NAMES])
    if len(names) > SHOWN_PTR_NAMES:
        shown += f" (+{len(names) - SHOWN_PTR_NAMES} more)"
    return Text(shown)


def print_report(console: Console, report: Report) -> None:
    """The report as tables. Every value came from a host or from DNS, so each
    is Text, never parsed as markup: a PTR name "x[/].test" is shown as it is."""
    rows = []
    for host in report.hosts:
        for row in host.transports:
            verdict = Text("ok", style="green") if not row.problems else Text("; ".join(row.problems), style="red")
            rows.append(
                [
                    Text(host.host),
                    Text(row.instance),
                    Text(row.service),
                    Text(row.address),
                    {True: Text("yes"), False: Text("no", style="red"), None: Text("?")}[row.configured],
                    Text(row.helo_name),
                    _ptr_cell(row.ptr_names),
                    Text("yes") if row.fcrdns else Text("no", style="red"),
                    Text(row.warmup or "-"),
                    verdict,
                ]
            )
    # "on host" and "warm-up" only where they tell something (the address was
    # looked up on a host; a transport warms up), so that 80 columns go to names.
    transports = [row for host in report.hosts for row in host.transports]
    optional = {"on host": any(row.configured is not None for row in transports), "warm-up": any(row.warmup for row in transports)}
    keep = [index for index, column in enumerate(TRANSPORT_COLUMNS) if optional.get(column.name, True)]
    columns = [TRANSPORT_COLUMNS[index] for index in keep]
    rows = [[row[index] for index in keep] for row in rows]
    console.print(fitted_table(console, "transports: bound address, reverse DNS and HELO", columns, rows))
    if report.domains:
        print_domains(console, report)
    rows = []
    for host in report.hosts:
        drift = Text("?") if not host.drift_known else (Text(f"{len(host.drift)} drifted", style="red") if host.drift else Text("in sync"))
        queues = ", ".join(f"{i.name} {i.queue if i.queue is not None else '?'}" for i in host.instances) or "-"
        soonest = min((c.days_left for c in host.certificates if c.days_left is not None), default=None)
        certs = "-" if not host.certificates else f"{len(host.certificates)}, soonest {soonest} days" if soonest is not None else "?"
        status = Text(host.status, style="" if host.status == "ok" else "red")
        problems = Text(str(len(host.problems)), style="red" if host.problems else "")
        mta = Text(host.mta or "-", style="" if host.mta_ok else "red")
        rows.append([Text(host.host), status, mta, drift, Text(queues), Text(certs), problems])
    console.print(fitted_table(console, "hosts", HOST_COLUMNS, rows))
    summary = report.summary()
    line = Text(f"{summary['problems']} problem(s)", style="red" if summary["problems"] else "green")
    line.append(
        f": {summary['transports_ok']}/{summary['transports']} transports with good rDNS, "
        f"{summary['drifted']} drifted, {summary['unreachable']} unreachable, {summary['hosts']} host(s)"
    )
    console.print(line)
    for host in report.hosts:
        for problem in host.problems:
            console.print(Text.assemble("  ", ("✗", "red"), visible(f" {host.host}: {problem}")), highlight=False)
    for domain in report.domains:
        for problem in domain.problems:
            # Problems quote what DNS served (a record, a parser's error about it).
            console.print(Text.assemble("  ", ("✗", "red"), visible(f" {domain.domain}: {problem}")), highlight=False, soft_wrap=True)


def print_domains(console: Console, report: Report) -> None:
    """One row per sending domain: what receivers check about it. DNS data: Text, never markup."""
    rows = []
    for domain in report.domains:
        passing = sum(1 for a in domain.addresses if a.result == "pass")
        if not domain.spf_record:
            spf = Text("none", style="red")
        elif domain.spf_lookups is None:
            spf = Text("does not parse", style="red")
        else:
            spf = Text(f"{passing}/{len(domain.addresses)} addresses, {domain.spf_lookups} lookups")
        dkim = Text(", ").join(
            Text.assemble(f"{s.selector} ", ("ok", "") if s.outcome == "ok" else (s.outcome, "red")) for s in domain.selectors
        )
        rows.append(
            [
                Text(domain.domain),
                spf,
                dkim if domain.selectors else Text("-"),
                Text(f"p={domain.dmarc_policy}") if domain.dmarc_record else Text("none", style="red"),
                Text("yes" if domain.mta_sts_record else "-"),
                Text("yes" if domain.tls_rpt_record else "-"),
                Text("ok", style="green") if not domain.problems else Text(str(len(domain.problems)), style="red"),
            ]
        )
    console.print(fitted_table(console, "sending domains: SPF, DKIM, DMARC, MTA-STS, TLS-RPT", DOMAIN_COLUMNS, rows))
