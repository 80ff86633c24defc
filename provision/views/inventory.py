"""``provision inventory``: the same documents as ``ansible-inventory``.

Variables declared secret by a role, or named like a secret, are masked.
"""

from __future__ import annotations

import re
from typing import Any

from provision.engine.diffs import MASK
from provision.errors import RoleError
from provision.inventory import Inventory
from provision.roles.compiler import Project
from provision.roles.loader import available_roles

_SECRET_NAME = re.compile(r"(^|_)(password|passwd|passphrase|secret|private_key|token|api_key)($|_)")


def secret_names(project: Project) -> set[str]:
    names: set[str] = set()
    for role_name in available_roles(project.loader.search_path):
        try:
            role = project.loader.get(role_name)
        except RoleError:
            continue
        names.update(name for name, spec in role.variables.items() if spec.secret)
    return names


def _masked(values: dict[str, Any], secrets: set[str], show: bool) -> dict[str, Any]:
    if show:
        return values
    return {k: (MASK if k in secrets or _SECRET_NAME.search(k) else v) for k, v in values.items()}


def host_document(inventory: Inventory, secrets: set[str], host: str, show_secrets: bool) -> dict[str, Any]:
    if host not in inventory.hosts:
        from provision.errors import InventoryError

        raise InventoryError(f"no host {host!r} in {inventory.source}")
    return _masked(inventory.host_vars(host), secrets, show_secrets)


def list_document(inventory: Inventory, secrets: set[str], show_secrets: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_meta": {"hostvars": {h: _masked(inventory.host_vars(h), secrets, show_secrets) for h in inventory.hosts}},
        "all": {"children": list(inventory.groups["all"].children)},
    }
    for name, group in inventory.groups.items():
        if name == "all":
            continue
        entry: dict[str, Any] = {}
        if group.children:
            entry["children"] = list(group.children)
        if group.hosts:
            entry["hosts"] = list(group.hosts)
        if entry:
            document[name] = entry
    return document


def graph_text(inventory: Inventory, group: str = "all") -> str:
    lines = [f"@{group}:"]

    def walk(name: str, indent: str) -> None:
        entry = inventory.groups[name]
        for child in entry.children:
            lines.append(f"{indent}|--@{child}:")
            walk(child, indent + "|  ")
        # Hosts written directly under 'all' show under 'ungrouped', as in Ansible.
        for host in entry.hosts if name != "all" else []:
            lines.append(f"{indent}|--{host}")

    walk(group, "  ")
    return "\n".join(lines)
