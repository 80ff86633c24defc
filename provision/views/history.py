"""``provision history``: the run log as tables readable at 80 columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.views.results import STATUS_STYLE

STATUSES = ("ok", "changed", "failed", "unreachable")


def _when(entry: dict[str, Any]) -> str:
    # 2026-11-25T10:04:05+0000 -> 2026-11-25 10:04:05: the zone is the controller's own.
    return str(entry.get("started", "?"))[:19].replace("T", " ")


def _summary(entry: dict[str, Any]) -> Text:
    counts = entry.get("summary", {})
    text = Text()
    for status in STATUSES:
        if counts.get(status):
            label = "drift" if status == "changed" and entry.get("check") else status
            text.append(f"{label}={counts[status]} ", style=STATUS_STYLE[status])
    return text


def _command(entry: dict[str, Any]) -> str:
    parts = [str(entry.get("command", "?"))]
    if entry.get("limit"):
        parts.append(f"-l {entry['limit']}")
    if entry.get("tags"):
        parts.append(f"-t {entry['tags']}")
    return " ".join(parts)


def print_runs(console: Console, entries: Sequence[dict[str, Any]]) -> None:
    table = Table("started", "run", "command", "user", "hosts", "result", box=None, padding=(0, 1, 0, 0), header_style="bold")
    table.columns[0].no_wrap = table.columns[1].no_wrap = True
    for entry in entries:
        table.add_row(
            _when(entry)[:16],
            str(entry.get("run_id", "?")),
            Text(_command(entry), overflow="fold"),
            Text(str(entry.get("user", "?")), overflow="fold"),
            str(len(entry.get("hosts", {}))),
            _summary(entry),
        )
    console.print(table)


def print_host_runs(console: Console, host: str, entries: Sequence[dict[str, Any]]) -> None:
    """A line per run, then what changed on the host, a line each: paths are never cut."""
    for entry in entries:
        result = entry["hosts"][host]
        status = str(result.get("status", "?"))
        label = "drift" if status == "changed" and entry.get("check") else status
        line = Text(f"{_when(entry)}  {_command(entry)}  ")
        line.append(label, style=STATUS_STYLE.get(status, ""))
        line.append(f"  run {entry.get('run_id', '?')}  by {entry.get('user', '?')}")
        console.print(line, soft_wrap=False, overflow="fold")
        changes = [
            *result.get("changed", []),
            *(f"directory {d}" for d in result.get("directories", [])),
            *(f"package {p}" for p in result.get("packages", [])),
            *(f"service {s}" for s in result.get("services", [])),
        ]
        for change in changes:
            console.print(Text(f"    {change}", overflow="fold"))
        for error in result.get("errors", [])[:1]:
            console.print(Text(f"    error: {str(error).splitlines()[0] if error else ''}", style="red", overflow="fold"))
