"""``provision inventory``: the inventory as ``ansible-inventory`` shows it."""

from __future__ import annotations

from pathlib import Path

import click

from provision.cli.common import ansible_options, inventory_option
from provision.inventory.options import LoadOptions


@click.command()
@click.argument("group", required=False, default=None)
@inventory_option
@click.option("--list", "as_list", is_flag=True, help="All groups and hosts, as ansible-inventory --list.")
@click.option("--host", "host", default=None, help="One host's merged variables, as ansible-inventory --host.")
@click.option("--graph", is_flag=True, help="The group tree (below GROUP if given), as ansible-inventory --graph [GROUP].")
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Show what is masked: variables a role declares secret, ansible_password and its kind, vault-decrypted values.",
)
@ansible_options(connect=False)
def inventory(
    group: str | None,
    inventory: tuple[Path, ...],
    as_list: bool,
    host: str | None,
    graph: bool,
    show_secrets: bool,
    load_options: LoadOptions,
) -> None:
    """Show the inventory as Ansible would (--list, --host H, --graph [GROUP])."""
    from provision.roles.compiler import Project
    from provision.views.inventory import graph_text, host_document, list_document, secret_names, to_json

    if group is not None and not graph:
        raise click.UsageError("GROUP goes with --graph (as ansible-inventory --graph GROUP)")
    project = Project.load(list(inventory), options=load_options)
    secrets = secret_names(project)
    vault, extra = load_options.vault, load_options.extra_vars
    if host is not None:
        click.echo(to_json(host_document(project.inventory, secrets, host, show_secrets, vault, extra)))
    elif graph:
        if group is not None and group not in project.inventory.groups:
            raise click.UsageError(
                f"--graph {group}: no group of that name in the inventory (ansible-inventory needs a group name here too)"
            )
        click.echo(graph_text(project.inventory, group or "all"))
    else:  # --list, the default as with ansible-inventory
        click.echo(to_json(list_document(project.inventory, secrets, show_secrets, vault, extra)))
