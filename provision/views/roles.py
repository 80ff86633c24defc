"""``provision roles``: roles and their documented variables.

Readable at 80 columns: variable names are never cut (a table cell keeps
each name whole; the other cells wrap), and text from role.yml is printed
as text, never read as rich markup (a description holding
``[relay.example.net]:587`` keeps its brackets).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from provision.roles.loader import Role
from provision.roles.variables import VariableSpec


def _default(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _default_text(spec: VariableSpec) -> str:
    if spec.secret and spec.has_default:
        return "(secret)"
    return "(required)" if spec.required else (_default(spec.default) if spec.has_default else "-")


def _kind(spec: VariableSpec) -> str:
    return spec.describe() if spec.choices else spec.type


def _heading(console: Console, role: Role) -> None:
    line = Text(role.name, style="bold")
    if role.description:
        line.append("  " + role.description.splitlines()[0])
    console.print(line)


def print_roles(console: Console, roles: list[Role], detailed: bool) -> None:
    for role in roles:
        _heading(console, role)
        if detailed:
            _print_detailed(console, role)
        else:
            table = Table(show_header=True, box=None, pad_edge=False)
            table.add_column("variable", no_wrap=True)
            table.add_column("type", overflow="fold")
            table.add_column("default", overflow="fold")
            for name, spec in role.variables.items():
                table.add_row(Text(name), Text(_kind(spec)), Text(_default_text(spec)))
            console.print(table)
        console.print()


def _print_detailed(console: Console, role: Role) -> None:
    """One block per variable: its name, type and default on a line, its description wrapped below."""
    for name, spec in role.variables.items():
        line = Text(name, style="bold")
        line.append(f"  {_kind(spec)}", style="cyan")
        line.append(f"  default {_default_text(spec)}" if not spec.required else "  (required)")
        console.print(line, overflow="fold")
        if spec.description:
            console.print(Padding(Text(spec.description), (0, 0, 0, 4)))
