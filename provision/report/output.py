"""A report as a terminal table, JSON, or one self-contained HTML page."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.bundled import templates_dir
from provision.report.model import Report
from provision.views.width import table_width

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


TRANSPORT_COLUMNS = ("host", "instance", "transport", "address", "HELO", "PTR", "FCrDNS", "verdict")


def print_report(console: Console, report: Report) -> None:
    rows = [
        (
            host.host,
            row.instance,
            row.service,
            row.address,
            row.helo_name,
            ", ".join(row.ptr_names) or "-",
            "yes" if row.fcrdns else "no",
            "; ".join(row.problems) or "ok",
        )
        for host in report.hosts
        for row in host.transports
    ]
    # Names and addresses are never cut: a table where every row fits on one
    # line, else (an 80-column terminal) one block per transport.
    if table_width(TRANSPORT_COLUMNS, rows, wrapping=("verdict",)) <= console.width:
        transports = Table(title="transports: bound address, reverse DNS and HELO", title_justify="left")
        for column in TRANSPORT_COLUMNS:
            transports.add_column(column, no_wrap=column != "verdict", overflow="fold")
        for row in rows:
            good = row[-1] == "ok"
            transports.add_row(
                *map(Text, row[:6]), Text(row[6], style="" if row[6] == "yes" else "red"), Text(row[7], style="green" if good else "red")
            )
        console.print(transports)
    else:
        _print_transport_blocks(console, rows)
    hosts = Table(title="hosts", title_justify="left")
    for column in ("host", "status", "drift", "queues", "certificates", "problems"):
        hosts.add_column(column, overflow="fold")
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
            console.print(f"  [red]✗[/] {host.host}: {problem}", highlight=False)


def _print_transport_blocks(console: Console, rows: Sequence[tuple[str, ...]]) -> None:
    """The transports table for a narrow terminal: names whole, the details indented below."""
    console.print(Text("transports: bound address, reverse DNS and HELO", style="italic"))
    for host, instance, service, address, helo, ptr, fcrdns, verdict in rows:
        line = Text(f"{host} {instance}/{service} {address}  ")
        line.append(verdict, style="green" if verdict == "ok" else "red")
        console.print(line, overflow="fold")
        details = Text(f"    HELO {helo or '-'}, PTR {ptr}, FCrDNS ")
        details.append(fcrdns, style="" if fcrdns == "yes" else "red")
        console.print(details, overflow="fold")
