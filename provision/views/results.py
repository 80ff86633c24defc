"""What the user sees: a per-host summary (rich) or one JSON document."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.text import Text

from provision.engine.converge import HostResult
from provision.engine.hosts import HostStatus
from provision.views.tables import Column, fitted_table

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold magenta", "interrupted": "bold yellow"}
JSON_VERSION = 1


CONVERGE_STATUSES = (HostStatus.OK, HostStatus.CHANGED, HostStatus.FAILED, HostStatus.UNREACHABLE)


def totals(results: list[HostResult]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    # A converge's four outcomes always; "interrupted" only after a Ctrl-C ("skipped" is provision mail's).
    shown = [*CONVERGE_STATUSES, *([HostStatus.INTERRUPTED] if counts.get(HostStatus.INTERRUPTED) else [])]
    return {status.value: counts.get(status, 0) for status in shown}


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
                "notes": r.notes,
                "facts": r.facts,
                "versions": r.versions,
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
    """Per-host lines and a table. Host names, paths and errors are Text, never
    markup: a host's message with "[/]" in it is shown as it is."""
    for result in results:
        _print_details(console, result, check, show_diff)
    columns = [Column("host", 8), Column("status", 6), Column("changed", 7, "right"), Column("handlers", 8)]
    columns += [Column("round trips", 6, "right"), Column("seconds", 7, "right")]
    rows = []
    for r in results:
        status = "drift" if check and r.status == "changed" else r.status
        changes = len(r.files) + len(r.directories) + len(r.packages) + len(r.services)
        rows.append(
            [
                Text(r.host),
                Text(status, style=STATUS_STYLE.get(r.status, "")),
                Text(str(changes)),
                Text(", ".join(r.handlers) or "-"),
                Text(str(r.round_trips)),
                Text(f"{r.seconds:.2f}"),
            ]
        )
    console.print(fitted_table(console, "check" if check else "apply", columns, rows))
    counts = totals(results)
    console.print(Text("  ").join(Text(f"{k}={v}", style=STATUS_STYLE[k]) for k, v in counts.items()))


def _line(console: Console, host: str, style: str, text: str) -> None:
    console.print(Text.assemble((host, style), f": {text}"), highlight=False, soft_wrap=True)


def _print_details(console: Console, result: HostResult, check: bool, show_diff: bool) -> None:
    verb = "would change" if check else "changed"
    for entry in result.files:
        _line(console, result.host, "yellow", f"{verb} {entry.path} ({', '.join(entry.reasons)})")
        if show_diff and entry.diff:
            # soft_wrap: each diff line stays one line, its +/- first (the terminal folds it).
            console.print(Text(entry.diff.rstrip("\n")), style="dim" if entry.secret else "", soft_wrap=True)
    for path in result.directories:
        _line(console, result.host, "yellow", f"{verb} directory {path}")
    for package in result.packages:
        _line(console, result.host, "yellow", f"{'would install' if check else 'installed'} package {package}")
    for service in result.services:
        _line(console, result.host, "yellow", f"service {service}")
    if check and result.handlers:
        _line(console, result.host, "yellow", f"would run handlers: {', '.join(result.handlers)}")
    for note in result.notes:
        _line(console, result.host, "", f"note: {note}")
    for error in result.errors:
        first, *rest = error.splitlines() or [""]
        _line(console, result.host, "bold red", f"{result.status}: {first}")
        for line in rest:
            console.print(Text(f"    {line}"), highlight=False, soft_wrap=True)
