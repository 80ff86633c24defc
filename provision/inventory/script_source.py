"""Executable inventories: Ansible's script protocol.

``SCRIPT --list`` prints one JSON object: groups (``{"hosts": [...],
"vars": {...}, "children": [...]}``, or a bare list of hosts) and usually
``_meta.hostvars``; without ``_meta`` the script is asked ``--host H`` for
each host. A script that hangs is killed after a timeout; a script that fails
or prints something else than a JSON object is an error naming it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.model import Inventory
from provision.inventory.vault import EncryptedValue

TIMEOUT_ENV = "PROVISION_INVENTORY_SCRIPT_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
"""Cloud inventory scripts can take a while on a large account; a hung one must not hang the run."""


def is_script(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
    except ValueError:
        raise InventoryError(f"{TIMEOUT_ENV} must be a number of seconds, got {os.environ[TIMEOUT_ENV]!r}") from None


def run_script(path: Path, *args: str) -> Any:
    """Run the script with ``args`` and return its parsed JSON output."""
    command = [str(path.resolve()), *args]
    where = Location(f"{path} {' '.join(args)}")
    timeout = _timeout()
    try:
        # Its own session, so that on timeout the script's children die with it.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        raise InventoryError(f"cannot run the inventory script: {exc.strerror}", where) from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise InventoryError(f"the inventory script did not finish within {timeout:g}s (set {TIMEOUT_ENV} to wait longer)", where) from None
    if process.returncode != 0:
        last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(nothing on stderr)"]
        raise InventoryError(f"the inventory script exited with status {process.returncode}: {last[0]}", where)
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError("the inventory script printed something that is not UTF-8 text", where) from None
    if args[:1] == ("--host",) and not text.strip():
        return {}
    try:
        return json.loads(text, object_hook=lambda obj: _decode(obj, where))
    except json.JSONDecodeError as exc:
        message = f"the inventory script printed something that is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InventoryError(message, where) from None


def _decode(obj: dict[str, Any], where: Location) -> Any:
    # Ansible's JSON profile: a vaulted value is {"__ansible_vault": "..."}, an unsafe one {"__ansible_unsafe": "..."}.
    if len(obj) == 1 and isinstance(obj.get("__ansible_vault"), str):
        return EncryptedValue(obj["__ansible_vault"], where)
    if len(obj) == 1 and isinstance(obj.get("__ansible_unsafe"), str):
        return obj["__ansible_unsafe"]
    return obj


def parse_script_inventory(path: Path, inventory: Inventory) -> None:
    data = run_script(path, "--list")
    where = Location(f"{path} --list")
    if not isinstance(data, dict):
        raise InventoryError(f"the inventory script must print a JSON object of groups, not a {type(data).__name__}", where)
    meta = data.get("_meta")
    host_vars: dict[str, Any] | None = None
    if meta is not None:
        if not isinstance(meta, dict) or not isinstance(meta.get("hostvars", {}), dict):
            raise InventoryError("'_meta' must be an object with 'hostvars' mapping each host to its variables", where)
        host_vars = meta.get("hostvars")
    hosts: dict[str, None] = {}
    for group, body in data.items():
        if group != "_meta":
            hosts.update(dict.fromkeys(_parse_group(inventory, group, body, where)))
    for host in hosts:
        values = host_vars.get(host, {}) if host_vars is not None else run_script(path, "--host", host)
        if not isinstance(values, dict):
            raise InventoryError(f"the variables of host {host!r} must be a JSON object", where)
        entry = inventory.host(host)
        entry.vars.update(values)
        entry.var_locations.update(dict.fromkeys(values, where))


def _parse_group(inventory: Inventory, group: str, body: Any, where: Location) -> list[str]:
    inventory.group(group)
    if isinstance(body, list):
        body = {"hosts": body}
    elif not isinstance(body, dict):
        raise InventoryError(f"group {group!r} must be an object with hosts, vars and children, or a list of hosts", where)
    elif not any(key in body for key in ("hosts", "vars", "children")):
        # An old form Ansible still reads: the group is one host, the object its variables.
        body = {"hosts": [group], "vars": body}
    hosts = body.get("hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise InventoryError(f"the hosts of group {group!r} must be a list of names", where)
    for host in hosts:
        inventory.add_host_to_group(host, group)
    values = body.get("vars") or {}
    if not isinstance(values, dict):
        raise InventoryError(f"the vars of group {group!r} must be an object", where)
    for key, value in values.items():
        inventory.set_group_var(group, key, value, where)
    children = body.get("children") or []
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise InventoryError(f"the children of group {group!r} must be a list of group names", where)
    for child in children:
        inventory.link(group, child)
    return hosts
