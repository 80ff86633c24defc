"""Ansible's YAML inventory format: ``all`` → ``children`` → ``hosts``, ``vars``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.model import Inventory
from provision.yamlfile import LocatedDict

_GROUP_KEYS = ("vars", "children", "hosts")


def parse_yaml_inventory(path: Path, inventory: Inventory, data: dict[str, Any]) -> None:
    """Add the groups of a loaded YAML inventory (a mapping of group names)."""
    for name, body in data.items():
        _parse_group(inventory, name, body, _where(data, name, path))


def _where(mapping: Any, key: str, path: Path) -> Location:
    if isinstance(mapping, LocatedDict):
        found = mapping.where(key)
        if found is not None:
            return found
    return Location(str(path))


def _parse_group(inventory: Inventory, name: str, body: Any, where: Location) -> None:
    inventory.group(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"group {name!r} must be a mapping with vars, children or hosts", where)
    for key in body:
        if key not in _GROUP_KEYS:
            raise InventoryError(
                f"group {name!r} has an unexpected key {key!r} (expected one of: {', '.join(_GROUP_KEYS)})",
                _where(body, key, Path(where.file)),
            )
    # Sections are read in the order they are written, as Ansible does: it
    # decides the order in which hosts are created, hence pattern order.
    for section, value in body.items():
        section_where = _where(body, section, Path(where.file))
        if isinstance(value, str) and section in ("hosts", "children"):
            value = {value: None}
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InventoryError(f"{section} of group {name!r} must be a mapping", section_where)
        if section == "vars":
            for key, item in value.items():
                inventory.set_group_var(name, key, item, _where(value, key, Path(where.file)))
        elif section == "children":
            for child, child_body in value.items():
                inventory.link(name, child)
                _parse_group(inventory, child, child_body, _where(value, child, Path(where.file)))
        else:
            for entry, host_vars in value.items():
                _parse_host(inventory, name, entry, host_vars, _where(value, entry, Path(where.file)))


def _parse_host(inventory: Inventory, group: str, entry: str, host_vars: Any, where: Location) -> None:
    if host_vars is not None and not isinstance(host_vars, dict):
        raise InventoryError(f"vars of host {entry!r} must be a mapping", where)
    values = dict(host_vars or {})
    locations = {key: _where(host_vars, key, Path(where.file)) for key in values}
    inventory.add_host_entry(str(entry), group, values, locations, where)
