"""Ansible's INI inventory format: ``[group]``, ``[group:vars]``, ``[group:children]``."""

from __future__ import annotations

import ast
import shlex
import warnings
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.model import Inventory


def parse_ini_value(text: str) -> Any:
    """Interpret a value as Ansible does: a Python literal, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_ini_inventory(path: Path, inventory: Inventory) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read inventory: {exc}", Location(str(path))) from None
    section, kind = "ungrouped", "hosts"
    pending_children: list[tuple[str, str, Location]] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = Location(str(path), number, 1)
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InventoryError(f"section header {line!r} lacks its closing ']'", where)
            section, _, kind = line[1:-1].strip().partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"unknown section kind {kind!r} (expected vars or children)", where)
            inventory.group(section)
            continue
        if kind == "hosts":
            _parse_host_line(inventory, section, line, where)
        elif kind == "vars":
            key, value = _parse_assignment(line, where)
            inventory.set_group_var(section, key, value, where)
        else:
            pending_children.append((section, line.split()[0], where))
    # Children may be declared before or after their own section.
    for parent, child, where in pending_children:
        if child not in inventory.groups:
            raise InventoryError(f"group {parent!r} names a child group {child!r} that is never defined", where)
        inventory.link(parent, child)


def _parse_assignment(line: str, where: Location) -> tuple[str, Any]:
    key, sep, value = line.partition("=")
    if not sep or not key.strip():
        raise InventoryError(f"expected key=value, got {line!r}", where)
    return key.strip(), parse_ini_value(value.strip())


def _parse_host_line(inventory: Inventory, group: str, line: str, where: Location) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot parse host line: {exc}", where) from None
    if not tokens:
        return
    values: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise InventoryError(f"expected key=value host variable, got {token!r}", where)
        key, _, value = token.partition("=")
        values[key] = parse_ini_value(value)
    inventory.add_host_entry(tokens[0], group, values, dict.fromkeys(values, where), where)
