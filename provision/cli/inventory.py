"""``provision inventory``: the inventory as ``ansible-inventory`` shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from provision.cli.common import friendly_errors, inventory_option


@click.command()
@inventory_option
@click.option("--list", "as_list", is_flag=True, help="All groups and hosts, as ansible-inventory --list.")
@click.option("--host", "host", default=None, help="One host's merged variables, as ansible-inventory --host.")
@click.option("--graph", is_flag=True, help="The group tree, as ansible-inventory --graph.")
@click.option("--show-secrets", is_flag=True, help="Do not mask variables declared secret.")
@friendly_errors
def inventory(inventory: tuple[Path, ...], as_list: bool, host: str | None, graph: bool, show_secrets: bool) -> None:
    """Show the inventory as Ansible would (--list, --host H, --graph)."""
    from provision.views.inventory import graph_text, host_document, list_document

    project_inventory = _load_for_view(list(inventory))
    if host is not None:
        click.echo(json.dumps(host_document(*project_inventory, host, show_secrets), indent=4, sort_keys=True))
    elif graph:
        click.echo(graph_text(project_inventory[0]))
    else:  # --list, the default as with ansible-inventory
        click.echo(json.dumps(list_document(*project_inventory, show_secrets), indent=4, sort_keys=True))


def _load_for_view(path: list[Path]) -> tuple[Any, set[str]]:
    from provision.roles.compiler import Project
    from provision.views.inventory import secret_names

    project = Project.load(path)
    return project.inventory, secret_names(project)
