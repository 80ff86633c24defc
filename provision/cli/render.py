"""``provision render``: every managed file written locally, no host contacted."""

from __future__ import annotations

from pathlib import Path

import click

from provision.cli.common import friendly_errors, inventory_option, limit_option


@click.command()
@inventory_option
@limit_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder to write DIR/<host>/<path> into.")
@click.option("-t", "--tags", default=None, help="Only resources with these tags.")
@friendly_errors
def render(inventory: tuple[Path, ...], limit: str | None, out: Path, tags: str | None) -> None:
    """Render every managed file locally, without touching any host."""
    from provision.roles.compiler import Project, compile_hosts, require_site
    from provision.roles.output_tree import write_rendered
    from provision.roles.selection import select

    project = Project.load(list(inventory))
    require_site(project)
    selection = select(project, limit, tags)
    for warning in selection.warnings:
        click.echo(f"warning: {warning}", err=True)
    compiled = compile_hosts(project, selection.hosts, selection.tags)
    count = write_rendered(out, {host: entry.desired.files for host, entry in compiled.items()})
    click.echo(f"rendered {count} files for {len(compiled)} hosts into {out}", err=True)
