"""``provision report``: transports, reverse DNS, drift, certificates, queues.

Exit 0 when every check passes and 2 when any problem is found, so cron and
CI can gate on it; 1 for a mistake in the input (nothing is contacted).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provision.cli.common import (
    EXIT_DRIFT,
    EXIT_OK,
    ansible_options,
    connection_options,
    forks_option,
    inventory_option,
    json_option,
    limit_option,
    nameservers,
)

if TYPE_CHECKING:
    from provision.engine.hosts import ConnectionOptions
    from provision.inventory.options import LoadOptions


@click.command()
@inventory_option
@limit_option
@click.option("--html", "html", type=click.Path(path_type=Path, dir_okay=False), help="Also write the report as one HTML page.")
@json_option
@click.option(
    "--dns-server",
    "dns_servers",
    multiple=True,
    metavar="IP[:PORT]",
    help="Resolver for PTR and forward lookups (repeatable); default the system's.",
)
@click.option(
    "--dns-timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds for all of one host's DNS lookups (they run at once); a resolver that stays silent is named.",
)
@click.option("--renew-days", default=30, show_default=True, type=click.IntRange(0), help="A certificate expiring sooner is a problem.")
@forks_option
@connection_options
@ansible_options()
def report(
    inventory: tuple[Path, ...],
    limit: str | None,
    html: Path | None,
    as_json: bool,
    dns_servers: tuple[str, ...],
    dns_timeout: float,
    renew_days: int,
    forks: int,
    connection: ConnectionOptions,
    load_options: LoadOptions,
) -> None:
    """Per host and Postfix instance: each transport's bound address, its PTR,
    forward confirmation and HELO match; drift, certificate expiry, queues."""
    from rich.console import Console
    from rich.text import Text

    from provision.engine.interrupt import EXIT_INTERRUPTED, sigint_stops
    from provision.report.dns_check import DnsChecker
    from provision.report.gather import gather
    from provision.report.output import print_report, to_json, write_html
    from provision.roles.compiler import Project

    resolvers = nameservers(dns_servers)
    project = Project.load(list(inventory), options=load_options)
    hosts = project.select(limit)
    label = ", ".join(dns_servers) or "system"
    err = Console(stderr=True)
    with (
        sigint_stops(lambda text: err.print(Text(text, style="bold yellow"))) as stop,
        err.status(f"reporting on {len(hosts)} host(s)", spinner="dots") if err.is_terminal and not as_json else nullcontext(),
    ):
        result = gather(project, hosts, DnsChecker(resolvers, dns_timeout), label, forks, renew_days, connection)
    if html is not None:
        write_html(result, html)
    if as_json:
        click.echo(to_json(result))
    else:
        print_report(Console(), result)
    if html is not None:
        # On stderr, so that it is said with --json too without touching the JSON document.
        click.echo(f"wrote the HTML report to {html.resolve()}", err=True)
    sys.exit(EXIT_INTERRUPTED if stop.requested() else EXIT_DRIFT if result.problem_count else EXIT_OK)
