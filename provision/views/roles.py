"""``provision roles``: roles and their documented variables."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from provision.roles.loader import Role


def _default(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def print_roles(console: Console, roles: list[Role], detailed: bool) -> None:
    for role in roles:
        # Text, not markup: a description such as "[relay.example.net]:587" is shown as written.
        summary = role.description.splitlines()[0] if role.description else ""
        console.print(Text.assemble((role.name, "bold"), "  ", summary), highlight=False)
        table = Table(show_header=True, box=None, pad_edge=False)
        table.add_column("variable")
        table.add_column("type")
        table.add_column("default")
        if detailed:
            table.add_column("description")
        for name, spec in role.variables.items():
            default = "(required)" if spec.required else (_default(spec.default) if spec.has_default else "-")
            if spec.secret and spec.has_default:
                default = "(secret)"
            row = [name, spec.describe() if spec.choices else spec.type, default]
            if detailed:
                row.append(spec.description)
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        console.print()
