"""``site.yml``: which roles apply to which hosts, like a playbook's plays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.yamlfile import LocatedDict, load_yaml_file

_PLAY_KEYS = {"name", "hosts", "roles", "vars", "tags"}


@dataclass
class RoleUse:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    location: Location | None = None


@dataclass
class Play:
    hosts: str
    roles: list[RoleUse]
    vars: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    location: Location | None = None


def find_site_file(inventory_dir: Path) -> Path | None:
    for name in ("site.yml", "site.yaml"):
        if (inventory_dir / name).is_file():
            return inventory_dir / name
    return None


def _where(data: Any, key: str | None, path: Path) -> Location:
    if isinstance(data, LocatedDict):
        found = data.where(key) if key else data.location
        if found:
            return found
    return Location(str(path))


def load_site(path: Path) -> list[Play]:
    data = load_yaml_file(path)
    if data is None:
        return []
    if not isinstance(data, list):
        raise InventoryError("site.yml must be a list of plays ({hosts: PATTERN, roles: [...]})", Location(str(path), 1, 1))
    plays = []
    for entry in data:
        where = _where(entry, None, path)
        if not isinstance(entry, dict):
            raise InventoryError("each play must be a mapping with 'hosts' and 'roles'", where)
        unknown = sorted(set(entry) - _PLAY_KEYS)
        if unknown:
            raise InventoryError(
                f"unknown key {unknown[0]!r} in a play (allowed: {', '.join(sorted(_PLAY_KEYS))})",
                _where(entry, unknown[0], path),
            )
        if not isinstance(entry.get("hosts"), str):
            raise InventoryError("a play needs 'hosts': a host pattern", where)
        roles_data = entry.get("roles") or []
        if not isinstance(roles_data, list):
            raise InventoryError("'roles' must be a list of role names", _where(entry, "roles", path))
        roles = [_role_use(item, path, _where(entry, "roles", path)) for item in roles_data]
        play_vars = entry.get("vars") or {}
        if not isinstance(play_vars, dict):
            raise InventoryError("'vars' of a play must be a mapping", _where(entry, "vars", path))
        plays.append(Play(entry["hosts"], roles, dict(play_vars), str(entry.get("name", "")), where))
    return plays


def _role_use(item: Any, path: Path, where: Location) -> RoleUse:
    if isinstance(item, str):
        return RoleUse(item, location=where)
    if isinstance(item, dict) and isinstance(item.get("role"), str):
        unknown = sorted(set(item) - {"role", "vars", "tags"})
        if unknown:
            raise InventoryError(f"unknown key {unknown[0]!r} in a role entry (allowed: role, vars, tags)", _where(item, unknown[0], path))
        tags = item.get("tags") or []
        return RoleUse(
            item["role"], dict(item.get("vars") or {}), [tags] if isinstance(tags, str) else list(tags), _where(item, None, path)
        )
    raise InventoryError("a role entry must be a role name or {role: NAME, vars: {...}}", where)
