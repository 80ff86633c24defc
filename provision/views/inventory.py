"""``provision inventory``: the same documents as ``ansible-inventory``.

Masked, unless ``--show-secrets``: variables a role declares secret,
Ansible's password variables (``ansible_password`` ...), and values that came
out of a vault. An inline ``!vault`` value is printed the way
``ansible-inventory`` prints it, as its ciphertext, so it needs no password;
values of a whole encrypted file show as ``********``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from provision.engine.diffs import MASK
from provision.errors import InventoryError, RoleError
from provision.inventory import Inventory
from provision.inventory.vault import EncryptedValue, Vault, VaultText
from provision.roles.compiler import Project
from provision.roles.hostvars import ANSIBLE_PASSWORD_VARIABLES
from provision.roles.loader import available_roles
from provision.yamlfile import UnsafeText

# ansible-inventory 2.19 names the JSON profile of its output; ours is the same.
PROFILE = "inventory_legacy"


def secret_names(project: Project) -> set[str]:
    """Variables declared secret by any role this project can use, and Ansible's passwords."""
    names: set[str] = set(ANSIBLE_PASSWORD_VARIABLES)
    for role_name in available_roles(project.loader.search_path):
        try:
            role = project.loader.get(role_name)
        except RoleError:
            continue
        names.update(name for name, spec in role.variables.items() if spec.secret)
    return names


class Shown:
    """How values are written out: masked or not, and in which of Ansible's two forms."""

    def __init__(self, secrets: set[str], show_secrets: bool, vault: Vault | None, listing: bool) -> None:
        self.secrets = secrets
        self.show = show_secrets
        self.vault = vault
        # --list writes unsafe text as {"__ansible_unsafe": ...}; --host writes it plain.
        self.listing = listing

    def variables(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {key: self._named(key, value) for key, value in values.items()}

    def _named(self, key: str, value: Any) -> Any:
        if key in self.secrets and not self.show and not isinstance(value, (EncryptedValue, bool)) and value is not None:
            return MASK
        return self.value(value)

    def value(self, value: Any) -> Any:
        if isinstance(value, EncryptedValue):
            if self.show:
                return str((self.vault or Vault()).reveal(value))
            return {"__ansible_vault": value.ciphertext}
        if isinstance(value, VaultText):
            if self.show:
                return str(value)
            return {"__ansible_vault": value.ciphertext} if value.ciphertext else MASK
        if isinstance(value, UnsafeText):
            return {"__ansible_unsafe": str(value)} if self.listing else str(value)
        if isinstance(value, dict):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value


def _merged(inventory: Inventory, host: str, extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    # ansible-inventory shows -e values in every host's variables, above everything.
    return {**inventory.host_vars(host), **extra_vars}


def host_document(
    inventory: Inventory,
    secrets: set[str],
    host: str,
    show_secrets: bool,
    vault: Vault | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if host not in inventory.hosts:
        raise InventoryError(f"no host {host!r} in {inventory.source}")
    shown = Shown(secrets, show_secrets, vault, listing=False)
    return shown.variables(_merged(inventory, host, extra_vars or {}))


def list_document(
    inventory: Inventory,
    secrets: set[str],
    show_secrets: bool,
    vault: Vault | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    shown = Shown(secrets, show_secrets, vault, listing=True)
    hostvars: dict[str, Any] = {}
    for host in inventory.hosts:
        values = _merged(inventory, host, extra_vars or {})
        if values:  # as Ansible: a host without variables is left out
            hostvars[host] = shown.variables(values)
    document: dict[str, Any] = {
        "_meta": {"hostvars": hostvars, "profile": PROFILE},
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


def to_json(document: Any) -> str:
    """As ansible-inventory writes it: sorted keys, four spaces, non-ASCII as text."""
    return json.dumps(document, indent=4, sort_keys=True, ensure_ascii=False)


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
