"""Ansible-compatible inventories: YAML, INI, scripts, folders, host lists and
``constructed`` sources, with group_vars/ and host_vars/ and Ansible Vault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.model import Group, Host, Inventory
from provision.inventory.patterns import select_hosts
from provision.inventory.sources import SourceReader, is_host_list
from provision.inventory.vars_files import load_vars_files, vars_files
from provision.inventory.vault import Vault

__all__ = ["Group", "Host", "Inventory", "find_inventory_file", "load_inventory", "select_hosts"]

_CANDIDATES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts", "inventory.yml", "inventory.ini")


def find_inventory_file(path: Path) -> Path:
    """The one file to edit for ``path``: itself, or the first known name in a folder."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in _CANDIDATES:
            if (path / name).is_file():
                return path / name
        raise InventoryError(f"no inventory file in this folder (looked for {', '.join(_CANDIDATES)})", Location(str(path)))
    raise InventoryError("no such inventory file or folder", Location(str(path)))


Source = Path | str


def load_inventory(path: Source | Sequence[Source], vault: Vault | None = None, extra_vars: Mapping[str, Any] | None = None) -> Inventory:
    """Load one source, or several merged in order as ``ansible -i A -i B`` does.

    ``vault`` decrypts encrypted files (inline ``!vault`` values stay
    encrypted until used); ``extra_vars`` reach ``constructed`` sources that
    set ``use_extra_vars``."""
    sources = [str(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
    if not sources:
        raise InventoryError("no inventory given (use -i, or set 'inventory' in ansible.cfg)")
    anchor = next((Path(s) for s in sources if not is_host_list(s)), Path.cwd())
    inventory = Inventory(source=anchor)
    reader = SourceReader(inventory, vault, extra_vars or {})
    for source in sources:
        reader.read(source)
    inventory.finish()
    for source in sources:
        # As Ansible's vars plugin: group_vars/ and host_vars/ beside a file, or inside a folder; none for a host list.
        if not is_host_list(source):
            base = Path(source)
            _attach_vars_files(inventory, base if base.is_dir() else base.parent, vault)
    return inventory


def _attach_vars_files(inventory: Inventory, base: Path, vault: Vault | None) -> None:
    for entries, folder in ((inventory.groups, "group_vars"), (inventory.hosts, "host_vars")):
        for name, entry in entries.items():
            values, locations = load_vars_files(vars_files(base / folder, name), vault)
            entry.file_vars.update(values)
            entry.file_var_locations.update(locations)
