"""``provision apply`` and ``provision check``: converge hosts, or report their drift.

Exit codes: 0 success (and, for ``check``, in sync); 1 an error (bad input,
a failed or unreachable host); 2 ``check`` found drift.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from provision.cli.common import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, forks_option, friendly_errors, inventory_option, json_option, limit_option

F = TypeVar("F", bound=Callable[..., Any])


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

    from provision.engine.runner import RunOptions, compile_hosts, run_hosts
    from provision.roles.compiler import Project, require_site
    from provision.views.results import print_summary, quiet_lines, to_json, totals

    project = Project.load(list(inventory))
    require_site(project)
    hosts = project.select(limit)
    wanted_tags = {t.strip() for t in tags.split(",") if t.strip()} if tags else None
    compiled = compile_hosts(project, hosts, wanted_tags)
    options = RunOptions(
        check=check,
        diff=diff,
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


@click.command()
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


@click.command()
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
