"""``group_vars/`` and ``host_vars/`` beside the inventory, as Ansible reads them.

For a name ``web`` Ansible reads ``web``, ``web.yml``, ``web.yaml`` and
``web.json``; where one of these is a folder, every file in it (recursively,
sorted, skipping hidden files and ``~`` backups) in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.vault import Vault
from provision.yamlfile import LocatedDict, load_yaml_file

_EXTENSIONS = (".yml", ".yaml", ".json")


def vars_files(folder: Path, name: str) -> list[Path]:
    found: list[Path] = []
    for suffix in (*_EXTENSIONS, ""):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_dir():
            found.extend(_folder_files(candidate))
        elif candidate.is_file():
            found.append(candidate)
    return found


def _folder_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir():
            found.extend(_folder_files(entry))
        elif entry.suffix in _EXTENSIONS or not entry.suffix:
            found.append(entry)
    return found


def load_vars_files(paths: list[Path], vault: Vault | None = None) -> tuple[dict[str, Any], dict[str, Location]]:
    """Merge the files in order; later files win. Returns values and locations.

    A file ``ansible-vault encrypt`` wrote is decrypted with ``vault``."""
    values: dict[str, Any] = {}
    locations: dict[str, Location] = {}
    for path in paths:
        data = load_yaml_file(path, vault)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise InventoryError("a vars file must be a mapping of variable names to values", Location(str(path), 1, 1))
        values.update(data)
        for key in data:
            where = data.where(key) if isinstance(data, LocatedDict) else None
            locations[key] = where or Location(str(path))
    return values, locations
