"""``provision history``: what ``apply`` and ``check`` did, from the controller's run log."""

from __future__ import annotations

import json

import click

from provision.cli.common import friendly_errors, json_option


@click.command()
@click.option("--host", "host", default=None, help="Only runs that touched this host, with what changed on it.")
@click.option("-n", "--last", "last", default=20, show_default=True, type=click.IntRange(0), help="How many runs (0: all).")
@json_option
@friendly_errors
def history(host: str | None, last: int, as_json: bool) -> None:
    """Past runs of apply and check, newest last (the run log in the state folder).

    Each run: its id (also the folder of the host's backups,
    /var/backups/provision/RUN), who ran it, where from, the inventory, and
    per host its status and the paths that changed. The log is
    $XDG_STATE_HOME/provision/runs.jsonl (PROVISION_STATE_DIR moves it)."""
    from rich.console import Console

    from provision import runlog
    from provision.views.history import print_host_runs, print_runs

    entries = [e for e in runlog.read() if host is None or host in e["hosts"]]
    if last:
        entries = entries[-last:]
    if as_json:
        if host is not None:
            entries = [{**e, "hosts": {host: e["hosts"][host]}} for e in entries]
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        what = f" touching {host}" if host else ""
        click.echo(f"no runs{what} in {runlog.log_file()}", err=True)
        return
    console = Console()
    if host is None:
        print_runs(console, entries)
    else:
        print_host_runs(console, host, entries)
