"""The ``provision`` command.

Exit codes: 0 success (and, for ``check``, in sync); 1 an error (bad input,
a failed or unreachable host); 2 ``check`` found drift.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from provision.cli_errors import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, forks_option, friendly_errors, inventory_option, json_option, limit_option

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="provision")
def main() -> None:
    """Declarative provisioning of mail and web servers over SSH."""


def _converge(
    inventory: tuple[Path, ...],
    limit: str | None,
    check: bool,
    diff: bool,
    forks: int,
    serial: int,
    tags: str | None,
    as_json: bool,
    known_hosts: str | None,
    accept_new: bool,
    command: str,
    quiet: bool = False,
) -> int:
    from rich.console import Console

    from provision.output import print_summary, quiet_lines, to_json, totals
    from provision.project import Project, require_site
    from provision.runner import RunOptions, compile_hosts, run_hosts

    project = Project.load(list(inventory))
    require_site(project)
    hosts = project.select(limit)
    wanted_tags = {t.strip() for t in tags.split(",") if t.strip()} if tags else None
    compiled = compile_hosts(project, hosts, wanted_tags)
    options = RunOptions(
        check=check,
        diff=diff or (as_json and diff),
        forks=forks,
        serial=serial,
        tags=wanted_tags,
        connection_options={
            **({"known_hosts": known_hosts} if known_hosts else {}),
            **({"accept_new_host_keys": "yes"} if accept_new else {}),
        },
    )
    err = Console(stderr=True)
    progress = _progress(err, len(hosts)) if err.is_terminal and not (as_json or quiet) else None
    if progress is not None:
        with progress[0]:
            results = run_hosts(compiled, options, progress=progress[1])
    else:
        results = run_hosts(compiled, options)
    if as_json:
        click.echo(to_json(command, results, check))
    elif quiet:
        for line in quiet_lines(results):
            click.echo(line)
    else:
        print_summary(Console(), results, check, diff)
    counts = totals(results)
    if counts["failed"] or counts["unreachable"]:
        return EXIT_ERROR
    if command == "check" and counts["changed"]:
        return EXIT_DRIFT
    return EXIT_OK


def _progress(console: Any, total: int) -> tuple[Any, Callable[[Any], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )
    task = bar.add_task("hosts", total=total)

    def advance(result: Any) -> None:
        bar.update(task, advance=1, description=f"{result.host}: {result.status}")

    return bar, advance


def _run_options(function: F) -> F:
    for option in reversed(
        [
            inventory_option,
            limit_option,
            click.option("--diff", is_flag=True, help="Show a diff of every changed file (secrets masked)."),
            forks_option,
            click.option("--serial", default=0, type=click.IntRange(0), help="Converge in batches of this many hosts."),
            click.option("-t", "--tags", default=None, help="Only resources with these tags (roles are tagged with their name)."),
            json_option,
            click.option("--known-hosts", default=None, help="known_hosts file for SSH host keys (default ~/.ssh/known_hosts)."),
            click.option("--accept-new-host-keys", is_flag=True, help="Record unknown SSH host keys (a changed key is still refused)."),
        ]
    ):
        function = option(function)
    return function


@main.command()
@_run_options
@click.option("-C", "--check", is_flag=True, help="Only report what would change.")
@friendly_errors
def apply(
    inventory: tuple[Path, ...],
    limit: str | None,
    diff: bool,
    forks: int,
    serial: int,
    tags: str | None,
    as_json: bool,
    known_hosts: str | None,
    accept_new_host_keys: bool,
    check: bool,
) -> None:
    """Converge hosts to their roles' desired state."""
    sys.exit(
        _converge(
            inventory,
            limit,
            check,
            diff,
            forks,
            serial,
            tags,
            as_json,
            known_hosts,
            accept_new_host_keys,
            "check" if check else "apply",
        )
    )


@main.command()
@_run_options
@click.option("-q", "--quiet", is_flag=True, help="Print only hosts that drifted, failed or were unreachable, one line each.")
@friendly_errors
def check(
    inventory: tuple[Path, ...],
    limit: str | None,
    diff: bool,
    forks: int,
    serial: int,
    tags: str | None,
    as_json: bool,
    known_hosts: str | None,
    accept_new_host_keys: bool,
    quiet: bool,
) -> None:
    """Report drift: exit 0 in sync, 2 drift found, 1 errors.

    For monitoring: --json (versioned, stable keys) or --quiet (silent when
    all is well, as cron wants)."""
    sys.exit(_converge(inventory, limit, True, diff, forks, serial, tags, as_json, known_hosts, accept_new_host_keys, "check", quiet))


@main.command()
@inventory_option
@limit_option
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder to write DIR/<host>/<path> into.")
@click.option("-t", "--tags", default=None, help="Only resources with these tags.")
@friendly_errors
def render(inventory: tuple[Path, ...], limit: str | None, out: Path, tags: str | None) -> None:
    """Render every managed file locally, without touching any host."""
    from provision.project import Project, require_site
    from provision.rendered import write_rendered
    from provision.runner import compile_hosts

    project = Project.load(list(inventory))
    require_site(project)
    hosts = project.select(limit)
    wanted = {t.strip() for t in tags.split(",")} if tags else None
    compiled = compile_hosts(project, hosts, wanted)
    count = write_rendered(out, {host: entry.desired.files for host, entry in compiled.items()})
    click.echo(f"rendered {count} files for {len(compiled)} hosts into {out}", err=True)


@main.command()
@inventory_option
@click.option("--list", "as_list", is_flag=True, help="All groups and hosts, as ansible-inventory --list.")
@click.option("--host", "host", default=None, help="One host's merged variables, as ansible-inventory --host.")
@click.option("--graph", is_flag=True, help="The group tree, as ansible-inventory --graph.")
@click.option("--show-secrets", is_flag=True, help="Do not mask variables declared secret.")
@friendly_errors
def inventory(inventory: tuple[Path, ...], as_list: bool, host: str | None, graph: bool, show_secrets: bool) -> None:
    """Show the inventory as Ansible would (--list, --host H, --graph)."""
    from provision.inventory_view import graph_text, host_document, list_document

    project_inventory = _load_for_view(list(inventory))
    if host is not None:
        click.echo(json.dumps(host_document(*project_inventory, host, show_secrets), indent=4, sort_keys=True))
    elif graph:
        click.echo(graph_text(project_inventory[0]))
    else:
        del as_list
        click.echo(json.dumps(list_document(*project_inventory, show_secrets), indent=4, sort_keys=True))


def _load_for_view(path: list[Path]) -> tuple[Any, set[str]]:
    from provision.inventory_view import secret_names
    from provision.project import Project

    project = Project.load(path)
    return project.inventory, secret_names(project)


@main.command()
@click.option("-i", "--inventory", "inventory", default=None, type=click.Path(path_type=Path), help="Also search this inventory's roles/.")
@click.argument("names", nargs=-1)
@friendly_errors
def roles(inventory: Path | None, names: tuple[str, ...]) -> None:
    """List roles and their variables."""
    from rich.console import Console

    from provision.roles import RoleLoader, available_roles, role_search_path
    from provision.roles_view import print_roles

    directory = None
    if inventory is not None:
        directory = inventory if inventory.is_dir() else inventory.parent
    search = role_search_path(directory)
    loader = RoleLoader(search)
    print_roles(Console(), [loader.get(n) for n in (names or available_roles(search))], detailed=bool(names))


def _register() -> None:
    from provision.cli_lab import lab, test_role
    from provision.cli_mail import mail
    from provision.cli_onboard import onboard
    from provision.cli_report import report

    main.add_command(lab)
    main.add_command(mail)
    main.add_command(onboard)
    main.add_command(report)
    main.add_command(test_role)


_register()

if __name__ == "__main__":
    main()
