"""``provision rollback RUN``: put back the files one run changed, validated and with handlers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provision.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    ansible_options,
    connection_options,
    forks_option,
    inventory_option,
    json_option,
    limit_option,
)
from provision.errors import ProvisionError

if TYPE_CHECKING:
    from provision.engine.hosts import ConnectionOptions
    from provision.inventory.options import LoadOptions


@click.command()
@click.argument("run_id", metavar="RUN")
@inventory_option
@limit_option
@click.option("--diff", is_flag=True, help="Show a diff of every file put back (secrets masked).")
@click.option("-C", "--check", is_flag=True, help="Only report what the rollback would do.")
@forks_option
@json_option
@connection_options
@ansible_options()
def rollback(
    run_id: str,
    inventory: tuple[Path, ...],
    limit: str | None,
    diff: bool,
    check: bool,
    forks: int,
    as_json: bool,
    connection: ConnectionOptions,
    load_options: LoadOptions,
) -> None:
    """Put back what run RUN changed on each host, from /var/backups/provision/RUN/.

    As an apply: checked by the roles' validators in staging, committed with
    backups of its own, handlers run. A file the run created is removed.
    Afterwards, `provision check` reports the drift from the inventory."""
    from rich.console import Console

    from provision.engine.rollback import rollback_hosts
    from provision.engine.runner import RunOptions
    from provision.roles.compiler import Project, compile_hosts
    from provision.views.results import print_summary, to_json, totals

    project = Project.load(list(inventory), options=load_options)
    hosts = project.select(limit)
    compiled = compile_hosts(project, hosts, None)
    options = RunOptions(check=check, diff=diff, forks=forks, connection=connection, command=f"provision rollback {run_id}")
    results, had_backups = rollback_hosts(compiled, run_id, options)
    if as_json:
        click.echo(to_json("rollback", results, check))
    else:
        print_summary(Console(), results, check, diff)
    counts = totals(results)
    if not had_backups and not (counts["failed"] or counts["unreachable"]):
        raise ProvisionError(f"no host of {', '.join(hosts)} keeps backups of run {run_id!r}")
    sys.exit(EXIT_ERROR if counts["failed"] or counts["unreachable"] else EXIT_OK)
