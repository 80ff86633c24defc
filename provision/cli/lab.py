"""``provision lab``: a local lab of Debian hosts in Docker, reached over SSH."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provision.cli.common import ansible_options, friendly_errors

if TYPE_CHECKING:
    from provision.inventory.options import LoadOptions

name_option = click.option("--name", "name", default="lab", show_default=True, help="Lab name: prefix of its hosts' names.")
SUITE_HELP = (
    "Debian release of the hosts: bullseye, bookworm (default) or trixie; a comma list gives one per host "
    "in order; HOST=SUITE sets one host. Repeatable."
)


@click.group()
def lab() -> None:
    """Start, inspect and stop a lab of real Debian hosts (Docker, --network host)."""


@lab.command()
@click.option("-n", "--hosts", "count", default=3, show_default=True, type=click.IntRange(1, 250), help="How many hosts.")
@name_option
@click.option(
    "-i",
    "--inventory",
    "inventory",
    default=None,
    type=click.Path(path_type=Path),
    help="Start one host per host of this inventory, with the same names (instead of NAME-1..N).",
)
@click.option("--suite", "suites", multiple=True, metavar="SUITE[,SUITE...]|HOST=SUITE", help=SUITE_HELP)
@ansible_options(connect=False)
def up(count: int, name: str, inventory: Path | None, suites: tuple[str, ...], load_options: LoadOptions) -> None:
    """Build each suite's base image if needed, start the hosts, write their inventory."""
    from provision.lab.lab import Lab, parse_suite_options

    if inventory is not None:
        from provision.inventory import load_inventory

        # An estate's vaulted files need the vault to be read at all.
        names = list(load_inventory(inventory, load_options.vault, load_options.extra_vars).hosts)
    else:
        names = [f"{name}-{i}" for i in range(1, count + 1)]
    chosen = parse_suite_options(suites, names)  # before anything starts: a typo changes nothing
    lab_ = Lab(name)
    hosts = lab_.up(count, say=lambda text: click.echo(text, err=True), names=names, suites=chosen)
    for host in hosts:
        click.echo(f"{host.name}\t{host.address}\t{host.suite}", err=True)
    click.echo(f"inventory: {lab_.inventory_file}", err=True)
    click.echo(str(lab_.inventory_file))


@lab.command()
@name_option
@friendly_errors
def down(name: str) -> None:
    """Remove the lab's containers, loopback addresses and inventory (the image and key stay)."""
    from provision.lab.lab import Lab

    lab_ = Lab(name)
    removed = lab_.down()
    for item in removed:
        click.echo(f"removed {item}", err=True)
    if not removed:
        click.echo(f"lab {name!r} had nothing to remove (no containers, addresses or state in {lab_.directory})", err=True)


@lab.command()
@name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def status(name: str, as_json: bool) -> None:
    """Each host, its address, its container's state, its Debian release and its SSH banner."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from provision.lab.docker import docker_client
    from provision.lab.lab import Lab

    docker_client()  # no engine: said first, whatever the lab's state
    lab_ = Lab(name)
    if not lab_.hosts():
        _not_up(lab_)
    rows = lab_.status()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("host", "address", "container", "release", "ssh")
    for row in rows:
        table.add_row(*(Text(row[key]) for key in ("host", "address", "container", "release", "ssh")))  # the SSH banner is the host's text
    Console().print(table)


@lab.command()
@name_option
@click.option("--path", "path_only", is_flag=True, help="Print only the inventory file's path (for -i).")
@friendly_errors
def inventory(name: str, path_only: bool) -> None:
    """Print the lab's inventory: use it as a second -i beside yours.

    \b
    Per host:
      host            the loopback address sshd listens on (127.x.y.z)
      lab_addresses   more loopback addresses of that host alone, for
                      services to bind: Postfix transports with
                      bind_address: "{{ lab_addresses[0] }}", and so on
    For all: user (root), ssh_key (the lab's own key), known_hosts (the
    hosts' keys, read from the containers, so SSH checks them)."""
    from provision.lab.lab import Lab

    lab_ = Lab(name)
    if not lab_.inventory_file.exists():
        _not_up(lab_)
    click.echo(str(lab_.inventory_file) if path_only else lab_.inventory_file.read_text(), nl=path_only)


def _not_up(lab_: Any) -> None:
    from provision.lab.docker import LabError

    raise LabError(f"lab {lab_.name!r} is not up (no state in {lab_.directory}): run 'provision lab up --name {lab_.name}'")


@lab.command(name="exec", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def exec_(name: str, host: str, command: tuple[str, ...]) -> None:
    """Run a command in a lab host: provision lab exec HOST -- CMD..."""
    from provision.lab.lab import Lab

    code, output = Lab(name).exec(host, list(command))
    click.echo(output, nl=False)
    sys.exit(code)


@click.command(name="test")
@click.argument("role")
@click.option("-s", "--scenario", default="default", show_default=True, help="Scenario folder name.")
@click.option("--keep", is_flag=True, help="Leave the lab hosts running afterwards.")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    metavar="SUITE[,SUITE...]",
    help="Debian release(s) of the lab hosts: bullseye, bookworm (default), trixie, or all; several run one after another.",
)
@click.option(
    "--name", "name", default=None, help="Lab name (default ROLE-SCENARIO): with --keep, 'provision lab ... --name NAME' finds it."
)
@friendly_errors
def test_role(role: str, scenario: str, keep: bool, suites: tuple[str, ...], name: str | None) -> None:
    """Create lab hosts, converge ROLE, check idempotence, verify (testinfra), destroy.

    The scenario is roles/ROLE/molecule/SCENARIO/ (of the current folder, else
    the bundled role) or molecule/SCENARIO/ of the current folder."""
    from provision.lab.image import SUITES, check_suite
    from provision.lab.scenario import find_scenario, run_scenario

    chosen = [s.strip() for value in suites for s in value.split(",") if s.strip()] or ["bookworm"]
    chosen = list(dict.fromkeys(suite for item in chosen for suite in (SUITES if item == "all" else (check_suite(item),))))
    found = find_scenario(role, scenario)
    for suite in chosen:
        outcome = run_scenario(found, keep, say=lambda text: click.echo(text, err=True), suite=suite, name=name)
        click.echo(f"{role}/{scenario} on {suite}: {outcome}", err=True)
