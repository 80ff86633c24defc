"""``provision onboard``: add a host to the inventory, converge it, verify its mail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from provision.cli.common import EXIT_ERROR, EXIT_OK, ansible_options, connection_options, inventory_option, nameservers

if TYPE_CHECKING:
    from provision.engine.hosts import ConnectionOptions
    from provision.inventory.options import LoadOptions


@click.command()
@click.argument("host", metavar="HOST")
@inventory_option
@click.option("-g", "--group", required=True, help="Inventory group to add the host to (site.yml maps it to roles).")
@click.option("-a", "--address", "addresses", multiple=True, metavar="IP", help="An outgoing address: one smtp transport each (repeat).")
@click.option("--ssh-host", default=None, help="Address or name to SSH to (ansible_host); default the host's name.")
@click.option("--ssh-user", default=None, help="SSH user (ansible_user).")
@click.option("--ssh-port", default=None, type=click.IntRange(1, 65535), help="SSH port (ansible_port).")
@click.option("--ssh-key", default=None, help="Private key file (ansible_ssh_private_key_file).")
@click.option("--verify-to", default=None, metavar="ADDRESS", help="Send one test message through each transport to this address.")
@click.option("--verify-timeout", default=120.0, show_default=True, type=click.FloatRange(1, 3600), help="Seconds to wait for delivery.")
@click.option("--dns-server", "dns_servers", multiple=True, metavar="IP[:PORT]", help="Resolver for the report's PTR checks.")
@click.option("-n", "--dry-run", is_flag=True, help="Show every step and file; write and contact nothing.")
@connection_options
@ansible_options(connect=False)
def onboard(
    host: str,
    inventory: tuple[Path, ...],
    group: str,
    addresses: tuple[str, ...],
    ssh_host: str | None,
    ssh_user: str | None,
    ssh_port: int | None,
    ssh_key: str | None,
    verify_to: str | None,
    verify_timeout: float,
    dns_servers: tuple[str, ...],
    dry_run: bool,
    connection: ConnectionOptions,
    load_options: LoadOptions,
) -> None:
    """Take HOST from bare Debian to a verified mail server: inventory,
    SSH, converge, a test message per transport, report, checklist.

    HOST is the server's fully qualified domain name (mx3.example.net): it
    becomes the inventory name, myhostname and, with a transport number, each
    transport's HELO name (out1.mx3.example.net), so a short name is refused.
    --ssh-host gives the address to connect to when DNS does not resolve it yet.

    The first -i is the inventory that gets edited (comments kept). Re-run
    after a failure: finished steps are no-ops, it continues where it stopped."""
    from rich.console import Console
    from rich.text import Text

    from provision.engine.interrupt import EXIT_INTERRUPTED, sigint_stops
    from provision.onboard.run import OnboardOptions, StepFailed, StepInterrupted
    from provision.onboard.run import onboard as run_onboard

    ssh = {"ansible_host": ssh_host, "ansible_user": ssh_user, "ansible_port": ssh_port, "ansible_ssh_private_key_file": ssh_key}
    options = OnboardOptions(
        host=host,
        group=group,
        addresses=list(addresses),
        ssh=ssh,
        verify_to=verify_to,
        verify_timeout=verify_timeout,
        dns_servers=nameservers(dns_servers),
        dry_run=dry_run,
        connection=connection,
        load=load_options,
    )
    console = Console()
    try:
        with sigint_stops(lambda text: console.print(Text(text, style="bold yellow"))) as stop:
            run_onboard(list(inventory), options, console)
        if stop.requested():  # between steps, or a dry run: nothing was cut short, but the user asked to stop
            sys.exit(EXIT_INTERRUPTED)
    except StepInterrupted as exc:
        click.echo(f"interrupted: {exc}", err=True)
        click.echo(f"run the same command again to continue from the {exc.step} step", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except StepFailed as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo(f"fix it and run the same command again: it continues from the {exc.step} step", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)
