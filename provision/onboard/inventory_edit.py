"""Adds a host to a user's YAML inventory without disturbing it.

ruamel.yaml's round trip keeps the user's comments, order and quoting; only
the new host line and the host's own ``host_vars`` keys are added. A key
the user already set in ``host_vars`` is never overwritten: their edit wins,
and a re-run of onboarding changes nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelError

from provision.errors import InventoryError, Location
from provision.inventory import find_inventory_file


@dataclass
class InventoryEdit:
    """New texts for the inventory's files; nothing is written until ``write``."""

    hosts_file: Path
    hosts_before: str
    hosts_after: str
    host_vars_file: Path
    host_vars_before: str | None
    host_vars_after: str
    added_keys: list[str] = field(default_factory=list)
    kept_keys: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.hosts_before != self.hosts_after or self.host_vars_before != self.host_vars_after


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load(yaml: YAML, text: str, path: Path) -> Any:
    try:
        return yaml.load(text)
    except RuamelError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = Location(str(path), mark.line + 1, mark.column + 1) if mark is not None else Location(str(path))
        raise InventoryError(f"cannot edit: {getattr(exc, 'problem', None) or exc}", where) from None


def _dump(yaml: YAML, data: Any) -> str:
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _find_group(groups: Any, group: str) -> CommentedMap | None:
    """The mapping that defines ``group``, searched through every ``children``."""
    if not isinstance(groups, dict):
        return None
    for name, value in groups.items():
        if name == group:
            if value is None:
                groups[name] = value = CommentedMap()
            return value if isinstance(value, CommentedMap) else None
        if isinstance(value, dict):
            found = _find_group(value.get("children"), group)
            if found is not None:
                return found
    return None


def plan_inventory_edit(inventory: Path, host: str, group: str, host_vars: dict[str, Any]) -> InventoryEdit:
    hosts_file = find_inventory_file(inventory)
    if hosts_file.suffix not in (".yml", ".yaml"):
        message = "onboard edits YAML inventories (hosts.yml); add the host to this INI inventory by hand"
        raise InventoryError(message, Location(str(hosts_file)))
    yaml = _yaml()
    before = hosts_file.read_text(encoding="utf-8")
    data = _load(yaml, before, hosts_file)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise InventoryError("expected a mapping of groups at the top", Location(str(hosts_file), 1, 1))
    definition = _find_group(data, group)
    if definition is None:
        top = data.setdefault("all", CommentedMap())
        if top is None:
            top = data["all"] = CommentedMap()
        children = top.setdefault("children", CommentedMap())
        if children is None:
            children = top["children"] = CommentedMap()
        definition = children[group] = CommentedMap()
    hosts = definition.get("hosts")
    if hosts is None:
        hosts = definition["hosts"] = CommentedMap()
    if not isinstance(hosts, dict):
        raise InventoryError(f"the hosts of group {group!r} are not a mapping", Location(str(hosts_file)))
    after = before
    if host not in hosts:
        hosts[host] = None
        after = _dump(yaml, data)

    vars_file = hosts_file.parent / "host_vars" / f"{host}.yml"
    vars_before = vars_file.read_text(encoding="utf-8") if vars_file.exists() else None
    current = _load(yaml, vars_before, vars_file) if vars_before else None
    if current is None:
        current = CommentedMap()
    if not isinstance(current, CommentedMap):
        raise InventoryError("expected a mapping of variables", Location(str(vars_file), 1, 1))
    added, kept = [], []
    for key, value in host_vars.items():
        if key in current:
            kept.append(key)
        else:
            current[key] = value
            added.append(key)
    if vars_before is None:
        current.yaml_set_start_comment(f"Written by 'provision onboard {host}'. Edit freely: a re-run never overwrites a key set here.")
    vars_after = _dump(yaml, current) if added or vars_before is None else vars_before
    return InventoryEdit(hosts_file, before, after, vars_file, vars_before, vars_after, added, kept)


def write(edit: InventoryEdit) -> None:
    from provision.atomic import write_atomic

    if edit.hosts_after != edit.hosts_before:
        write_atomic(edit.hosts_file, edit.hosts_after.encode())
    if edit.host_vars_after != edit.host_vars_before:
        write_atomic(edit.host_vars_file, edit.host_vars_after.encode())
