"""``provision apply`` and ``provision check``: converge hosts, or report their drift.

Exit codes: 0 success (and, for ``check``, in sync); 1 an error (bad input,
a failed or unreachable host); 2 ``check`` found drift.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from provision.cli.common import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    ansible_options,
    connection_options,
    forks_option,
    inventory_option,
    json_option,
    limit_option,
)

if TYPE_CHECKING:
    from provision.engine.hosts import ConnectionOptions
    from provision.engine.runner import RunOptions
    from provision.inventory.options import LoadOptions

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConvergeCommand:
    """What ``apply`` and ``check`` were asked to do."""

    inventory: tuple[Path, ...]
    limit: str | None
    tags: str | None
    run: RunOptions
    as_json: bool = False
    quiet: bool = False
    name: str = "apply"
    load: LoadOptions | None = None
    """Vault, -e and connection defaults (cli/common.py ansible_options)."""
    skip_tags: str | None = None
    list_hosts: bool = False


def _converge(command: ConvergeCommand) -> int:
    import time
    from dataclasses import replace

    from rich.console import Console
    from rich.text import Text

    from provision.engine.interrupt import EXIT_INTERRUPTED, sigint_stops
    from provision.engine.runner import run_hosts
    from provision.inventory.options import LoadOptions
    from provision.roles.compiler import Project, compile_hosts, compile_warnings, require_site
    from provision.roles.selection import select
    from provision.views.progress import HostLines, LongSteps, Observers, stderr_line
    from provision.views.results import print_summary, quiet_lines, to_json, totals

    started = time.time()
    skipped = frozenset(t.strip() for t in (command.skip_tags or "").split(",") if t.strip())
    project = Project.load(list(command.inventory), options=replace(command.load or LoadOptions(), skip_tags=skipped))
    require_site(project)
    selection = select(project, command.limit, command.tags)
    for warning in selection.warnings:
        click.echo(f"warning: {warning}", err=True)
    if command.list_hosts:  # as 'ansible all --limit L --list-hosts': the hosts this run would touch, in order
        click.echo(f"  hosts ({len(selection.hosts)}):")
        for host in selection.hosts:
            click.echo(f"    {host}")
        return EXIT_OK
    compiled = compile_hosts(project, selection.hosts, selection.tags)
    for warning in compile_warnings(compiled):
        click.echo(f"warning: {warning}", err=True)
    err = Console(stderr=True)
    quiet = command.as_json or command.quiet
    run = command.run
    with sigint_stops(lambda text: err.print(Text(text, style="bold yellow"))) as stop:
        if err.is_terminal and not quiet:
            bar, advance = _progress(err, len(compiled), run.check)
            steps = LongSteps(bar.console.print)
            run = replace(run, connection=replace(run.connection, observer=Observers(run.connection.observer, steps)))
            with bar:
                results = run_hosts(compiled, run, progress=advance)
        elif not quiet:
            # Piped (cron, CI): a line per host as it finishes and per long step as it starts.
            run = replace(run, connection=replace(run.connection, observer=Observers(run.connection.observer, LongSteps(stderr_line))))
            results = run_hosts(compiled, run, progress=HostLines(len(compiled), run.check, stderr_line))
        else:
            results = run_hosts(compiled, run)
    _log_run(command, run, results, {host: entry.secrets for host, entry in compiled.items()}, started)
    if command.as_json:
        click.echo(to_json(command.name, results, command.run.check))
    elif command.quiet:
        for line in quiet_lines(results):
            click.echo(line)
    else:
        from rich.console import Console

        print_summary(Console(), results, command.run.check, command.run.diff)
    counts = totals(results)
    if stop.requested():
        return EXIT_INTERRUPTED
    if counts["failed"] or counts["unreachable"]:
        return EXIT_ERROR
    if command.name == "check" and counts["changed"]:
        return EXIT_DRIFT
    return EXIT_OK


def _log_run(command: ConvergeCommand, run: RunOptions, results: list[Any], secrets: dict[str, list[str]], started: float) -> None:
    """One line in the run log; a log that cannot be written is said, never fails the run."""
    from provision import runlog

    record = runlog.RunRecord(run.run_id, command.name, command.inventory, command.limit, command.tags, run.check, started)
    try:
        runlog.append(runlog.record(record, results, secrets))
    except OSError as exc:
        click.echo(f"warning: could not write the run log {runlog.log_file()}: {exc.strerror or exc}", err=True)


def _progress(console: Any, total: int, check: bool) -> tuple[Any, Callable[[Any], None]]:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    )
    task = bar.add_task("hosts", total=total)

    def advance(result: Any) -> None:
        status = "drift" if check and result.status == "changed" else result.status
        bar.update(task, advance=1, description=f"{escape(result.host)}: {status}")

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
            click.option("--skip-tags", default=None, help="Leave out resources with these tags (a role's name skips the role)."),
            click.option("--list-hosts", is_flag=True, help="Only list the hosts this run would touch, in order."),
            json_option,
            connection_options,
        ]
    ):
        function = option(function)
    return function


@click.command()
@_run_options
@click.option("-C", "--check", is_flag=True, help="Only report what would change.")
@ansible_options()
def apply(
    inventory: tuple[Path, ...],
    limit: str | None,
    diff: bool,
    forks: int,
    serial: int,
    tags: str | None,
    skip_tags: str | None,
    list_hosts: bool,
    as_json: bool,
    connection: ConnectionOptions,
    check: bool,
    load_options: LoadOptions,
) -> None:
    """Converge hosts to their roles' desired state."""
    from provision.engine.runner import RunOptions

    run = RunOptions(check=check, diff=diff, forks=forks, serial=serial, connection=connection)
    name = "check" if check else "apply"
    sys.exit(_converge(ConvergeCommand(inventory, limit, tags, run, as_json, False, name, load_options, skip_tags, list_hosts)))


@click.command()
@_run_options
@click.option("-q", "--quiet", is_flag=True, help="Print only hosts that drifted, failed or were unreachable, one line each.")
@ansible_options()
def check(
    inventory: tuple[Path, ...],
    limit: str | None,
    diff: bool,
    forks: int,
    serial: int,
    tags: str | None,
    skip_tags: str | None,
    list_hosts: bool,
    as_json: bool,
    connection: ConnectionOptions,
    quiet: bool,
    load_options: LoadOptions,
) -> None:
    """Report drift: exit 0 in sync, 2 drift found, 1 errors.

    For monitoring: --json (versioned, stable keys) or --quiet (silent when
    all is well, as cron wants)."""
    from provision.engine.runner import RunOptions

    run = RunOptions(check=True, diff=diff, forks=forks, serial=serial, connection=connection)
    sys.exit(_converge(ConvergeCommand(inventory, limit, tags, run, as_json, quiet, "check", load_options, skip_tags, list_hosts)))
