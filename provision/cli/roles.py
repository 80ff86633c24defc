"""``provision roles``: roles and their variables."""

from __future__ import annotations

from pathlib import Path

import click

from provision.cli.common import friendly_errors


@click.command()
@click.option("-i", "--inventory", "inventory", default=None, type=click.Path(path_type=Path), help="Also search this inventory's roles/.")
@click.argument("names", nargs=-1)
@friendly_errors
def roles(inventory: Path | None, names: tuple[str, ...]) -> None:
    """List roles and their variables."""
    from rich.console import Console

    from provision.roles.loader import RoleLoader, available_roles, role_search_path
    from provision.views.roles import print_roles

    directory = None
    if inventory is not None:
        directory = inventory if inventory.is_dir() else inventory.parent
    search = role_search_path(directory)
    loader = RoleLoader(search)
    print_roles(Console(), [loader.get(n) for n in (names or available_roles(search))], detailed=bool(names))
