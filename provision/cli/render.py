"""``provision render``: every managed file written locally, no host contacted."""

from __future__ import annotations

from pathlib import Path

import click

from provision.cli.common import ansible_options, inventory_option, limit_option
from provision.inventory.options import LoadOptions


@click.command()
@inventory_option
@limit_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder to write DIR/<host>/<path> into.")
@click.option("-t", "--tags", default=None, help="Only resources with these tags.")
@click.option("--skip-tags", default=None, help="Leave out resources with these tags (a role's name skips the role).")
@click.option(
    "--release",
    type=click.Choice(["bullseye", "bookworm", "trixie"]),
    default="bookworm",
    show_default=True,
    help="Render as for hosts of this Debian release (its package versions); a real run uses each host's own.",
)
@ansible_options(connect=False)
def render(
    inventory: tuple[Path, ...],
    limit: str | None,
    out: Path,
    tags: str | None,
    skip_tags: str | None,
    release: str,
    load_options: LoadOptions,
) -> None:
    """Render every managed file locally, without touching any host."""
    from dataclasses import replace

    from provision.roles.compiler import Project, compile_hosts, compile_warnings, require_site
    from provision.roles.output_tree import write_rendered
    from provision.roles.releases import RELEASES
    from provision.roles.selection import select

    skipped = frozenset(t.strip() for t in (skip_tags or "").split(",") if t.strip())
    project = Project.load(list(inventory), options=replace(load_options, skip_tags=skipped))
    require_site(project)
    selection = select(project, limit, tags)
    for warning in selection.warnings:
        click.echo(f"warning: {warning}", err=True)
    compiled = compile_hosts(project, selection.hosts, selection.tags, facts=RELEASES[release])
    for warning in compile_warnings(compiled):
        click.echo(f"warning: {warning}", err=True)
    count = write_rendered(out, {host: entry.desired.files for host, entry in compiled.items()})
    click.echo(f"rendered {count} files for {len(compiled)} hosts into {out}", err=True)
