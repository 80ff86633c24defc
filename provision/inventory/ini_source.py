"""Ansible's INI inventory format: ``[group]``, ``[group:vars]``, ``[group:children]``.

The text is parsed completely before the inventory is touched, so a file that
turns out not to be INI leaves nothing behind for the next parser to trip on.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.model import Inventory
from provision.inventory.vault import mark_decrypted

# As Ansible's: a name without ':', ']' or blanks, an optional :kind, an optional comment.
# '[2001:db8::1]:2022' is therefore a host line, not a section.
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_ini_value(text: str) -> Any:
    """Interpret a value as Ansible does: a Python literal, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value, text)


def _plain(value: Any, text: str) -> Any:
    # literal_eval knows types no variable can hold; Ansible keeps those as text.
    if value is ... or isinstance(value, complex):
        return text
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (tuple, set)):
        return [_plain(v, str(v)) for v in value]
    if isinstance(value, list):
        return [_plain(v, str(v)) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, str(v)) for k, v in value.items()}
    return value


Step = Callable[[Inventory], None]


def parse_ini_inventory(path: Path, inventory: Inventory, text: str, secret: bool = False) -> None:
    """Parse ``text`` (the file's, decrypted if need be) into ``inventory``;
    ``secret``: the file was encrypted, so its values are vault text."""
    steps = parse_ini_text(path, text, set(inventory.groups), mark_decrypted if secret else _same)
    for step in steps:
        step(inventory)


def _same(value: Any) -> Any:
    return value


def parse_ini_text(path: Path, text: str, existing: set[str], mark: Callable[[Any], Any] = _same) -> list[Step]:
    """The changes the file makes to an inventory that already has the groups
    ``existing``, in order; raises on any mistake."""
    steps: list[Step] = []
    section, kind = "ungrouped", "hosts"
    declared = existing | {"all", "ungrouped"}
    vars_only: dict[str, Location] = {}
    pending_children: list[tuple[str, str, Location]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = Location(str(path), number, 1)
        if not line or line.startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header is not None:
            section, kind = header.group(1), header.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"section [{section}:{kind}] has an unknown kind {kind!r} (expected vars or children)", where)
            if kind == "vars":
                vars_only.setdefault(section, where)
            else:
                declared.add(section)
            steps.append(_group_step(section))
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(f"invalid section header {line!r} (no spaces or ':' inside a group name)", where)
        if kind == "hosts":
            steps.append(_host_step(section, line, where, mark))
        elif kind == "vars":
            key, value = _parse_assignment(line, where)
            value = mark(value)
            steps.append(partial(Inventory.set_group_var, group=section, key=key, value=value, where=where))
        else:
            match = _GROUP_NAME.match(line)
            if match is None:
                raise InventoryError(f"expected a group name, got {line!r}", where)
            pending_children.append((section, match.group(1), where))
    # Children may be declared before or after their own section.
    for parent, child, where in pending_children:
        if child not in declared:
            raise InventoryError(f"section [{parent}:children] names a group {child!r} that is never defined", where)
        steps.append(partial(Inventory.link, parent=parent, child=child))
    for group, where in vars_only.items():
        if group not in declared:
            raise InventoryError(f"section [{group}:vars] is for a group {group!r} that is never defined", where)
    return steps


def _group_step(name: str) -> Step:
    def step(inventory: Inventory) -> None:
        inventory.group(name)

    return step


def _parse_assignment(line: str, where: Location) -> tuple[str, Any]:
    key, sep, value = line.partition("=")
    if not sep or not key.strip():
        raise InventoryError(f"expected key=value, got {line!r}", where)
    return key.strip(), parse_ini_value(value.strip())


def _host_step(group: str, line: str, where: Location, mark: Callable[[Any], Any]) -> Step:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot parse host line: {exc}", where) from None
    if not tokens:
        return lambda inventory: None
    entry = tokens[0]
    if entry == "---":
        raise InventoryError("a host named '---' is a sign that this is a YAML file", where)
    if entry.endswith(":") and not entry.endswith("]:"):
        raise InventoryError(f"host {entry!r} ends with ':', which is kept for a port number", where)
    values: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise InventoryError(f"expected key=value host variable, got {token!r}", where)
        key, _, value = token.partition("=")
        values[key] = mark(parse_ini_value(value))
    locations = dict.fromkeys(values, where)
    return lambda inventory: inventory.add_host_entry(entry, group, values, locations, where)
