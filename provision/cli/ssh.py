"""``provision ssh close``: end the shared SSH connections provision keeps open.

OpenSSH connections stay open for ``ssh_control_persist`` seconds after a
run (60 by default) so that the next run opens a channel instead of a
connection; this ends them now: every one (no ``-i``), or those to the
inventory's hosts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provision.cli.common import ansible_options, json_option, limit_option

if TYPE_CHECKING:
    from provision.inventory.options import LoadOptions


@click.group()
def ssh() -> None:
    """Shared SSH connections (OpenSSH's ControlMaster)."""


@ssh.command()
@click.option(
    "-i",
    "--inventory",
    "inventory",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Only the connections to this inventory's hosts (repeatable); default every connection.",
)
@limit_option
@json_option
@ansible_options()
def close(inventory: tuple[Path, ...], limit: str | None, as_json: bool, load_options: LoadOptions) -> None:
    """End shared SSH connections now instead of after their persistence time."""
    from provision.connectors import settings_from_vars
    from provision.connectors.openssh import close_all, close_connection, ssh_client

    if ssh_client() is None:
        click.echo("no ssh client on this machine: provision uses Paramiko, which keeps no connection open", err=True)
        return
    if not inventory:
        if limit:
            raise click.UsageError("--limit needs --inventory")
        closed = close_all()
        click.echo(json.dumps({"closed": closed}) if as_json else f"closed {closed} shared connection{'s' * (closed != 1)}")
        return
    from provision.roles.compiler import Project

    # The same host variables as the run that opened them (vault, -e, -u): the same connection names.
    project = Project.load(list(inventory), options=load_options)
    results: dict[str, bool | None] = {}
    for host in project.select(limit):
        settings = settings_from_vars(host, project.variables(host, project.host_roles(host))[0])
        results[host] = close_connection(settings) if settings.connection == "ssh" else None
    if as_json:
        click.echo(json.dumps({"hosts": results, "closed": sum(bool(n) for n in results.values())}))
        return
    for host, done in results.items():
        state = "not an OpenSSH connection" if done is None else ("closed" if done else "no open connection")
        click.echo(f"{host}: {state}")
