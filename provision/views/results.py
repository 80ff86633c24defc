"""What the user sees: a per-host summary (rich) or one JSON document."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.engine.converge import HostResult
from provision.engine.hosts import HostStatus

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold magenta"}
JSON_VERSION = 1


CONVERGE_STATUSES = (HostStatus.OK, HostStatus.CHANGED, HostStatus.FAILED, HostStatus.UNREACHABLE)


def totals(results: list[HostResult]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {status.value: counts.get(status, 0) for status in CONVERGE_STATUSES}


def to_json(command: str, results: list[HostResult], check: bool) -> str:
    document: dict[str, Any] = {
        "version": JSON_VERSION,
        "command": command,
        "check": check,
        "hosts": {
            r.host: {
                "status": r.status,
                "changed": [f.path for f in r.files],
                "files": [
                    {"path": f.path, "reasons": f.reasons, "secret": f.secret, **({"diff": f.diff} if f.diff is not None else {})}
                    for f in r.files
                ],
                "directories": r.directories,
                "packages": r.packages,
                "services": r.services,
                "handlers": r.handlers,
                "errors": r.errors,
                "facts": r.facts,
                "round_trips": r.round_trips,
                "seconds": r.seconds,
            }
            for r in results
        },
        "summary": totals(results),
    }
    return json.dumps(document, indent=2, sort_keys=False)


def quiet_lines(results: list[HostResult]) -> list[str]:
    """One line per host that needs a look; nothing at all when all is well."""
    lines = []
    for r in results:
        if r.status == "changed":
            items = [f.path for f in r.files] + r.directories + [f"package {p}" for p in r.packages] + [f"service {s}" for s in r.services]
            lines.append(f"{r.host}: drift: {', '.join(items)}")
        elif r.status in ("failed", "unreachable"):
            lines.append(f"{r.host}: {r.status}: {(r.errors or [''])[0].splitlines()[0] if r.errors else ''}".rstrip(": "))
    return lines


def print_summary(console: Console, results: list[HostResult], check: bool, show_diff: bool) -> None:
    for result in results:
        _print_details(console, result, check, show_diff)
    table = Table(title="check" if check else "apply", title_justify="left")
    for column in ("host", "status", "changed", "handlers", "round trips", "seconds"):
        table.add_column(column, justify="right" if column in ("changed", "round trips", "seconds") else "left", overflow="fold")
    for r in results:
        status = "drift" if check and r.status == "changed" else r.status
        changes = len(r.files) + len(r.directories) + len(r.packages) + len(r.services)
        table.add_row(
            r.host,
            Text(status, style=STATUS_STYLE.get(r.status, "")),
            str(changes),
            ", ".join(r.handlers) or "-",
            str(r.round_trips),
            f"{r.seconds:.2f}",
        )
    console.print(table)
    counts = totals(results)
    console.print("  ".join(f"[{STATUS_STYLE[k]}]{k}={v}[/]" for k, v in counts.items()))


def _print_details(console: Console, result: HostResult, check: bool, show_diff: bool) -> None:
    verb = "would change" if check else "changed"
    for entry in result.files:
        console.print(f"[yellow]{result.host}[/]: {verb} {entry.path} ({', '.join(entry.reasons)})", highlight=False, soft_wrap=True)
        if show_diff and entry.diff:
            # soft_wrap: each diff line stays one line, its +/- first (the terminal folds it).
            console.print(Text(entry.diff.rstrip("\n")), style="dim" if entry.secret else "", soft_wrap=True)
    for path in result.directories:
        console.print(f"[yellow]{result.host}[/]: {verb} directory {path}", highlight=False, soft_wrap=True)
    for package in result.packages:
        console.print(
            f"[yellow]{result.host}[/]: {'would install' if check else 'installed'} package {package}", highlight=False, soft_wrap=True
        )
    for service in result.services:
        console.print(f"[yellow]{result.host}[/]: service {service}", highlight=False, soft_wrap=True)
    for error in result.errors:
        first, *rest = error.splitlines() or [""]
        console.print(f"[bold red]{result.host}[/]: {result.status}: {first}", highlight=False, soft_wrap=True)
        for line in rest:
            console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
