"""``plugin: constructed`` sources: groups and variables computed from the
inventory read so far (Ansible's constructed inventory plugin).

``compose`` sets host variables from Jinja expressions, ``groups`` adds a
host to a group when a condition is true, ``keyed_groups`` makes a group
from a variable's value (``prefix`` + ``separator`` + value). As in Ansible,
only variables written in earlier inventory sources are seen (not
group_vars/ or host_vars/), an expression that fails skips that entry unless
``strict: true``, a condition must give true or false, and names made into
groups have every character that cannot stand in a variable name replaced
by ``_``. Expressions run in Jinja's sandbox: an inventory file never
reaches Python internals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from provision.errors import InventoryError, Location
from provision.inventory.model import Inventory
from provision.inventory.vault import Vault, contains_vault, reveal_tree
from provision.yamlfile import LocatedDict, UnsafeText

PLUGIN_NAMES = ("constructed", "ansible.builtin.constructed")
_OPTIONS = ("plugin", "strict", "compose", "groups", "keyed_groups", "leading_separator", "use_extra_vars", "use_vars_plugins")
_INVALID_GROUP_CHARS = re.compile(r"^[\d\W]|[^\w]")


class _Skip(Exception):
    """An entry whose expression failed, with strict off: Ansible skips it."""


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _environment() -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    # The Ansible filters and tests that grouping expressions use most.
    extra: dict[str, Callable[..., Any]] = {
        "bool": _bool,
        "ternary": lambda value, yes, no, none=None: none if value is None and none is not None else (yes if value else no),
        "regex_replace": lambda value, pattern, replacement="": re.sub(pattern, replacement, str(value)),
        "regex_search": lambda value, pattern: m.group(0) if (m := re.search(pattern, str(value))) else None,
        "to_json": lambda value: json.dumps(value, sort_keys=True),
        "split": lambda value, sep=None: str(value).split(sep),
    }
    env.filters.update(extra)
    env.tests["match"] = lambda value, pattern: re.match(pattern, str(value)) is not None
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    env.tests["regex"] = env.tests["search"]
    return env


def safe_group_name(name: str) -> str:
    return _INVALID_GROUP_CHARS.sub("_", name)


class Constructed:
    def __init__(self, path: Path, config: LocatedDict | dict[str, Any], vault: Vault | None, extra_vars: Mapping[str, Any]) -> None:
        self.path = path
        self.where = Location(str(path))
        for key in config:
            if key not in _OPTIONS:
                raise InventoryError(f"constructed: unknown option {key!r} (known: {', '.join(_OPTIONS)})", self._at(config, key))
        if _bool(config.get("use_vars_plugins", False)):
            raise InventoryError(
                "constructed: use_vars_plugins is not supported (group_vars/ and host_vars/ are read after every source)",
                self._at(config, "use_vars_plugins"),
            )
        self.strict = _bool(config.get("strict", False))
        self.leading_separator = _bool(config.get("leading_separator", True))
        self.extra_vars = dict(extra_vars) if _bool(config.get("use_extra_vars", False)) else {}
        self.compose = self._mapping(config, "compose")
        self.groups = self._mapping(config, "groups")
        keyed = config.get("keyed_groups") or []
        if not isinstance(keyed, list) or not all(isinstance(k, dict) for k in keyed):
            raise InventoryError("constructed: keyed_groups must be a list of mappings", self._at(config, "keyed_groups"))
        self.keyed_groups: list[dict[str, Any]] = keyed
        self.vault = vault
        self.env = _environment()
        self._expressions: dict[str, Any] = {}

    def _at(self, config: Any, key: str) -> Location:
        found = config.where(key) if isinstance(config, LocatedDict) else None
        return found or self.where

    def _mapping(self, config: Any, key: str) -> dict[str, Any]:
        value = config.get(key) or {}
        if not isinstance(value, dict):
            raise InventoryError(f"constructed: {key} must be a mapping", self._at(config, key))
        return dict(value)

    # --- evaluation ------------------------------------------------------------
    def _evaluate(self, expression: Any, context: dict[str, Any], what: str) -> Any:
        if not isinstance(expression, str):
            return expression
        try:
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(expression, undefined_to_none=False)
            value = compiled(**context)
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return value
        except Exception as exc:
            if self.strict:
                message = getattr(exc, "message", None) or str(exc)
                raise InventoryError(f"constructed: {what}: {expression!r} failed: {message}", self.where) from None
            raise _Skip from None

    def _context(self, inventory: Inventory, host: str) -> dict[str, Any]:
        values = inventory.inventory_vars(host)
        if self.vault is not None and self.vault.secrets and contains_vault(values):
            values = {key: reveal_tree(value, self.vault) for key, value in values.items()}
        values.update(self.extra_vars)
        values.update(
            inventory_hostname=host,
            inventory_hostname_short=host.split(".")[0],
            group_names=sorted(inventory.ancestors(host) - {"all"}),
        )
        return values

    # --- the three kinds of entry ------------------------------------------------
    def apply(self, inventory: Inventory) -> None:
        for host in list(inventory.hosts):
            context = self._context(inventory, host)
            for name, expression in self.compose.items():
                try:
                    value = self._evaluate(expression, context, f"compose {name} for host {host}")
                except _Skip:
                    continue
                inventory.hosts[host].vars[name] = _untrusted(value, _strings_of(context))
                inventory.hosts[host].var_locations[name] = self.where
            context = self._context(inventory, host)
            for name, condition in self.groups.items():
                self._conditional_group(inventory, host, safe_group_name(str(name)), condition, context)
            for entry in self.keyed_groups:
                self._keyed_groups(inventory, host, entry, context)

    def _conditional_group(self, inventory: Inventory, host: str, group: str, condition: Any, context: dict[str, Any]) -> None:
        try:
            result = self._evaluate(condition, context, f"group {group} for host {host}")
        except _Skip:
            return
        if not isinstance(result, bool):
            # Ansible 2.19: a condition must be true or false; anything else fails the entry.
            if self.strict:
                kind = type(result).__name__
                message = f"constructed: the condition of group {group} gives {kind} {result!r} for host {host}, not true or false"
                raise InventoryError(message, self.where)
            return
        if result:
            inventory.add_host_to_group(host, group)

    def _keyed_groups(self, inventory: Inventory, host: str, entry: dict[str, Any], context: dict[str, Any]) -> None:
        try:
            key = self._evaluate(entry.get("key"), context, f"keyed group {entry.get('key')!r} for host {host}")
        except _Skip:
            return
        default_value = entry.get("default_value")
        trailing = entry.get("trailing_separator")
        if trailing is not None and default_value is not None:
            raise InventoryError("constructed: a keyed group takes default_value or trailing_separator, not both", self.where)
        empty = (None, "")
        use_default = key in empty and default_value is not None
        if not key and not use_default:
            if self.strict and key not in ([], {}):
                raise InventoryError(f"constructed: keyed group {entry.get('key')!r} gives nothing for host {host}", self.where)
            return
        prefix, separator = str(entry.get("prefix") or ""), str(entry.get("separator", "_"))
        names: list[str] = []
        if use_default:
            names.append(str(default_value))
        elif isinstance(key, str):
            names.append(key)
        elif isinstance(key, list):
            names += [str(default_value) if item in empty and default_value is not None else str(item) for item in key]
        elif isinstance(key, dict):
            for name, value in key.items():
                if value in empty and default_value is not None:
                    names.append(f"{name}{separator}{default_value}")
                elif value in empty and trailing is False:
                    names.append(str(name))
                else:
                    names.append(f"{name}{separator}{value}")
        else:
            raise InventoryError(f"constructed: keyed group key {entry.get('key')!r} must give text, a list or a mapping", self.where)
        parent = entry.get("parent_group")
        if prefix == "" and not self.leading_separator:
            separator = ""
        for name in names:
            group = safe_group_name(f"{prefix}{separator}{name}")
            inventory.add_host_to_group(host, group)
            if parent:
                inventory.link(safe_group_name(str(parent)), group)


def _strings_of(value: Any, found: set[int] | None = None) -> set[int]:
    """The identities of every string in the inputs (see _untrusted)."""
    found = set() if found is None else found
    if isinstance(value, str):
        found.add(id(value))
    elif isinstance(value, dict):
        for item in value.values():
            _strings_of(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings_of(item, found)
    return found


def _untrusted(value: Any, inputs: set[int]) -> Any:
    # Text a template made is never templated again (Ansible marks it unsafe);
    # text passed through unchanged keeps what it was.
    if isinstance(value, str):
        return value if id(value) in inputs else UnsafeText(value)
    if isinstance(value, list | tuple):
        return [_untrusted(v, inputs) for v in value]
    if isinstance(value, dict):
        return {k: _untrusted(v, inputs) for k, v in value.items()}
    return value


def is_constructed(config: Mapping[str, Any]) -> bool:
    return str(config.get("plugin")) in PLUGIN_NAMES
