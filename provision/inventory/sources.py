"""Which parser reads an inventory source, in Ansible's order.

A source (``-i``) is a host list (``web1,web2,``: it has a comma and is no
file), a folder (every file in it, in name order, and its sub-folders, the
way Ansible walks them), or a file. A file is tried as Ansible tries it: an
executable is run as a script; a ``.yml``/``.yaml`` file with a ``plugin:``
key configures a plugin (only ``constructed`` is known); a file named
``.yml``, ``.yaml``, ``.json`` or without a suffix is read as YAML; anything
else, and YAML that turned out to be text or a list, as INI. A file that no
parser can read is an error giving each parser's reason; Ansible would only
warn and go on with fewer hosts.

A file that ``ansible-vault encrypt`` wrote is decrypted first; without a
password that is an error, never a parse of the ciphertext.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location, ProvisionError, YamlError
from provision.inventory.constructed import Constructed, is_constructed
from provision.inventory.hostranges import parse_address
from provision.inventory.ini_source import parse_ini_inventory
from provision.inventory.model import Inventory
from provision.inventory.script_source import is_script, parse_script_inventory
from provision.inventory.vault import Vault, mark_decrypted
from provision.yamlfile import load_yaml_text, read_text_file

# Ansible's folder rules: hidden entries, vars folders and these suffixes are not inventory.
IGNORED_NAMES = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$")
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
# provision keeps site.yml, roles and templates beside the inventory, and writes there what
# roles bring back from hosts by default (ssl: csr/HOST-NAME.csr; dkim: dkim/HOST/*.txt;
# the local CA is .local-ca): never inventory sources, or the next run could not read the folder.
PROVISION_LAYOUT = frozenset({"site.yml", "site.yaml", "roles", "templates", "csr", "dkim"})
_YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")


def is_host_list(source: str) -> bool:
    return "," in source and not os.path.exists(source)


def skipped_in_folder(name: str) -> bool:
    return bool(IGNORED_NAMES.search(name)) or name.endswith(IGNORED_SUFFIXES) or name in PROVISION_LAYOUT


class SourceReader:
    """Reads sources into one inventory, with the run's vault and extra vars."""

    def __init__(self, inventory: Inventory, vault: Vault | None, extra_vars: Mapping[str, Any]) -> None:
        self.inventory = inventory
        self.vault = vault
        self.extra_vars = extra_vars

    def read(self, source: str) -> None:
        if is_host_list(source):
            self._host_list(source)
            return
        path = Path(source)
        if path.is_dir():
            for name in sorted(os.listdir(path)):
                if not skipped_in_folder(name):
                    self.read_in_folder(path / name)
        elif path.is_file():
            self.read_file(path)
        elif path.exists():
            raise InventoryError("not a file or folder", Location(source))
        else:
            raise InventoryError("no such inventory file or folder", Location(source))

    def read_in_folder(self, path: Path) -> None:
        try:
            self.read(str(path))
        except InventoryError as exc:
            if not path.is_file() or not exc.message.startswith("cannot read this inventory file"):
                raise
            hint = (
                "; a folder given with -i is read as Ansible reads it, every file in it an inventory: move this file out, or give -i FILE"
            )
            raise InventoryError(exc.message + hint, exc.location) from None

    def _host_list(self, source: str) -> None:
        for entry in (e.strip() for e in source.split(",")):
            if not entry:
                continue
            # As Ansible's host_list: ranges are not expanded here, and an entry
            # that is no address is taken as it is.
            parsed = parse_address(entry)
            name, port = (entry, None) if parsed is None or "[" in parsed[0] else parsed
            if name in self.inventory.hosts:
                continue
            self.inventory.add_host_to_group(name, "ungrouped")
            if port is not None:
                self.inventory.hosts[name].vars["ansible_port"] = port
                self.inventory.hosts[name].var_locations["ansible_port"] = Location(source)

    def read_file(self, path: Path) -> None:
        failures: list[tuple[str, ProvisionError]] = []
        if is_script(path):
            try:
                parse_script_inventory(path, self.inventory)
                return
            except InventoryError as exc:
                failures.append(("a script", exc))
        text, encrypted = read_text_file(path, self.vault)
        if path.suffix in _YAML_SUFFIXES:
            try:
                data = load_yaml_text(text, str(path))
            except YamlError as exc:
                failures.append(("YAML", exc))
                data = False
            if isinstance(data, dict):
                self._yaml(path, mark_decrypted(data) if encrypted else data)
                return
            if data is None:
                return  # an empty file: no hosts, as in Ansible
            if data is not False:
                failures.append(("YAML", InventoryError(f"a YAML inventory is a mapping of groups, this is a {_kind(data)}")))
        if path.suffix == ".toml":
            raise InventoryError("TOML inventories are not supported (write YAML or INI)", Location(str(path)))
        try:
            parse_ini_inventory(path, self.inventory, text, secret=encrypted)
            return
        except InventoryError as exc:
            failures.append(("INI", exc))
        reasons = "; ".join(f"as {kind}: {_reason(exc, path)}" for kind, exc in failures)
        raise InventoryError(f"cannot read this inventory file ({reasons})", Location(str(path)))

    def _yaml(self, path: Path, data: dict[str, Any]) -> None:
        from provision.inventory.yaml_source import parse_yaml_inventory

        if "plugin" in data:
            if not is_constructed(data):
                where = data.where("plugin") if hasattr(data, "where") else None
                raise InventoryError(
                    f"inventory plugin {data['plugin']!r} is not supported (provision reads YAML, INI, scripts, folders, "
                    "host lists and 'plugin: constructed'); export what it finds with "
                    f"'ansible-inventory -i {path} --list --yaml --export --output hosts.yml', or wrap it in an inventory script",
                    where or Location(str(path)),
                )
            Constructed(path, data, self.vault, self.extra_vars).apply(self.inventory)
            return
        parse_yaml_inventory(path, self.inventory, data)


def _kind(data: Any) -> str:
    return "list" if isinstance(data, list) else f"single {type(data).__name__} value"


def _reason(exc: ProvisionError, path: Path) -> str:
    # The file is named once, in front; keep each parser's line and column.
    location = exc.location
    if location is not None and location.file == str(path) and location.line is not None:
        return f"line {location.line}: {exc.message}"
    return str(exc)
