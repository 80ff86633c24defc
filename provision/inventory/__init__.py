"""Ansible-compatible inventories: YAML or INI, with group_vars/ and host_vars/."""

from __future__ import annotations

from pathlib import Path

from provision.errors import InventoryError, Location
from provision.inventory.ini_source import parse_ini_inventory
from provision.inventory.model import Group, Host, Inventory
from provision.inventory.patterns import select_hosts
from provision.inventory.vars_files import load_vars_files, vars_files
from provision.inventory.yaml_source import parse_yaml_inventory

__all__ = ["Group", "Host", "Inventory", "find_inventory_file", "load_inventory", "select_hosts"]

_CANDIDATES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts", "inventory.yml", "inventory.ini")


def find_inventory_file(path: Path) -> Path:
    """The inventory file itself: ``path``, or the first known name in a folder."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in _CANDIDATES:
            if (path / name).is_file():
                return path / name
        raise InventoryError(f"no inventory file in this folder (looked for {', '.join(_CANDIDATES)})", Location(str(path)))
    raise InventoryError("no such inventory file or folder", Location(str(path)))


def _is_yaml(path: Path) -> bool:
    if path.suffix in (".yml", ".yaml", ".json"):
        return True
    if path.suffix == ".ini":
        return False
    # Files without a suffix (Ansible's classic "hosts") may be either.
    first = next((ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()), "")
    return not first.startswith("[") and (first.endswith(":") or first.startswith(("---", "all:")))


def load_inventory(path: Path | list[Path]) -> Inventory:
    """Load one inventory, or several merged in order as ``ansible -i A -i B`` does."""
    files = [find_inventory_file(p) for p in (path if isinstance(path, list) else [path])]
    inventory = Inventory(source=files[0])
    for inventory_file in files:
        if _is_yaml(inventory_file):
            parse_yaml_inventory(inventory_file, inventory)
        else:
            parse_ini_inventory(inventory_file, inventory)
    inventory.finish()
    for inventory_file in files:
        _attach_vars_files(inventory, inventory_file.parent)
    return inventory


def _attach_vars_files(inventory: Inventory, base: Path) -> None:
    for entries, folder in ((inventory.groups, "group_vars"), (inventory.hosts, "host_vars")):
        for name, entry in entries.items():
            values, locations = load_vars_files(vars_files(base / folder, name))
            entry.file_vars.update(values)
            entry.file_var_locations.update(locations)
