"""The inventory: hosts, groups and Ansible's variable precedence.

Precedence follows Ansible's ``VariableManager`` for inventory sources, so
``provision inventory --host H`` prints what ``ansible-inventory --host H``
prints for the same inventory (lowest first):

1. vars of group ``all`` written in the inventory file
2. vars of the host's other groups written in the inventory file
3. ``group_vars/all``
4. ``group_vars/<group>`` for the host's other groups
5. the host's vars written in the inventory file
6. ``host_vars/<host>``

Within 2 and 4 groups merge by (depth, ``ansible_group_priority``, name).
Dicts replace each other whole, as with Ansible's default hash_behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InventoryError, Location
from provision.inventory.hostranges import expand_host_pattern, split_host_port


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    file_vars: dict[str, Any] = field(default_factory=dict)
    """Vars from group_vars/ (applied after every inventory-file group var)."""
    var_locations: dict[str, Location] = field(default_factory=dict)
    file_var_locations: dict[str, Location] = field(default_factory=dict)
    priority: int = 1
    """``ansible_group_priority``: Ansible consumes it rather than keeping it as a var."""


@dataclass
class Host:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    file_vars: dict[str, Any] = field(default_factory=dict)
    """Vars from host_vars/."""
    var_locations: dict[str, Location] = field(default_factory=dict)
    file_var_locations: dict[str, Location] = field(default_factory=dict)


@dataclass
class Inventory:
    """Hosts and groups in the order the inventory declares them."""

    source: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group("all")
        self.group("ungrouped")
        self.link("all", "ungrouped")

    @property
    def directory(self) -> Path:
        return self.source if self.source.is_dir() else self.source.parent

    # --- building -------------------------------------------------------
    def group(self, name: str) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name)
        return self.groups[name]

    def host(self, name: str, where: Location | None = None) -> Host:
        if name not in self.hosts:
            problem = host_name_problem(name)
            if problem is not None:
                raise InventoryError(f"host name {name!r} {problem}", where)
            self.hosts[name] = Host(name)
        return self.hosts[name]

    def link(self, parent: str, child: str) -> None:
        parent_group, child_group = self.group(parent), self.group(child)
        if child not in parent_group.children:
            parent_group.children.append(child)
        if parent not in child_group.parents:
            child_group.parents.append(parent)

    def add_host_entry(self, entry: str, group: str, values: dict[str, Any], locations: dict[str, Location], where: Location) -> None:
        """``entry`` as written in an inventory (``web[1:3]:2222``): expand it, put
        every host in ``group``, give each the port and ``values``."""
        pattern, port = split_host_port(entry)
        try:
            names = expand_host_pattern(pattern)
        except ValueError as exc:
            raise InventoryError(str(exc), where) from None
        for name in names:
            self.host(name, where)
            self.add_host_to_group(name, group)
            host = self.hosts[name]
            if port is not None:
                host.vars["ansible_port"] = port
                host.var_locations["ansible_port"] = where
            host.vars.update(values)
            host.var_locations.update(locations)

    def add_host_to_group(self, host: str, group: str) -> None:
        entry, target = self.host(host), self.group(group)
        if host not in target.hosts:
            target.hosts.append(host)
        if group not in entry.groups:
            entry.groups.append(group)

    def finish(self) -> None:
        """Attach loose groups to ``all`` and hosts with no group to ``ungrouped``."""
        for name, group in self.groups.items():
            if name != "all" and not group.parents:
                self.link("all", name)
        ungrouped = self.groups["ungrouped"]
        for name, host in self.hosts.items():
            if not [g for g in host.groups if g not in ("all", "ungrouped")]:
                if name not in ungrouped.hosts:
                    ungrouped.hosts.append(name)
                if "ungrouped" not in host.groups:
                    host.groups.append("ungrouped")
            elif "ungrouped" in host.groups:
                host.groups.remove("ungrouped")
                ungrouped.hosts.remove(name)
        # Ansible lists 'ungrouped' first among the children of 'all'.
        children = self.groups["all"].children
        children.remove("ungrouped")
        children.insert(0, "ungrouped")

    # --- queries ---------------------------------------------------------
    def ancestors(self, host: str) -> set[str]:
        """Every group the host belongs to, directly or through parents."""
        seen: set[str] = set()
        stack = [*list(self.hosts[host].groups), "all"]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.groups[name].parents)
        return seen

    def depth(self, group: str, _visiting: frozenset[str] = frozenset()) -> int:
        parents = [p for p in self.groups[group].parents if p not in _visiting]
        if not parents:
            return 0
        return 1 + max(self.depth(p, _visiting | {group}) for p in parents)

    def set_group_var(self, group: str, key: str, value: Any, where: Location) -> None:
        entry = self.group(group)
        if key == "ansible_group_priority":
            try:
                entry.priority = int(value)
            except (TypeError, ValueError):
                raise InventoryError(f"ansible_group_priority of group {group!r} must be a number, got {value!r}", where) from None
            return
        entry.vars[key] = value
        entry.var_locations[key] = where

    def sorted_groups(self, host: str) -> list[str]:
        names = self.ancestors(host) - {"all"}
        return sorted(names, key=lambda g: (self.depth(g), self.groups[g].priority, g))

    def _layers(self, name: str) -> list[tuple[dict[str, Any], dict[str, Location]]]:
        """Variable sources for a host, lowest precedence first."""
        host, all_group = self.hosts[name], self.groups["all"]
        groups = [self.groups[g] for g in self.sorted_groups(name)]
        layers = [(all_group.vars, all_group.var_locations)]
        layers += [(g.vars, g.var_locations) for g in groups]
        layers.append((all_group.file_vars, all_group.file_var_locations))
        layers += [(g.file_vars, g.file_var_locations) for g in groups]
        layers.append((host.vars, host.var_locations))
        layers.append((host.file_vars, host.file_var_locations))
        return layers

    def inventory_vars(self, name: str) -> dict[str, Any]:
        """The host's variables written in inventory sources only (not group_vars/
        or host_vars/): what a ``constructed`` source sees, as in Ansible."""
        merged: dict[str, Any] = dict(self.groups["all"].vars)
        for group in self.sorted_groups(name):
            merged.update(self.groups[group].vars)
        merged.update(self.hosts[name].vars)
        return merged

    def host_vars(self, name: str) -> dict[str, Any]:
        """The host's variables merged with Ansible's precedence."""
        merged: dict[str, Any] = {}
        for values, _ in self._layers(name):
            merged.update(values)
        return merged

    def var_layers(self, name: str) -> list[dict[str, Any]]:
        """The host's variable sources, lowest precedence first: for a merge that
        knows which names mean the same setting (see ``connectors.variables``)."""
        return [values for values, _ in self._layers(name)]

    def var_location(self, host: str, key: str) -> Location | None:
        """Where the winning value of ``key`` for ``host`` was written."""
        for values, locations in reversed(self._layers(host)):
            if key in values:
                found: Location | None = locations.get(key)
                return found
        return None

    def group_names(self, host: str) -> list[str]:
        return sorted(self.ancestors(host) - {"all", "ungrouped"})


def host_name_problem(name: str) -> str | None:
    """Why a host name cannot be used, or None.

    A host's name becomes a folder (``provision render``'s OUT/HOST, the DKIM
    records' RECORDS_DIR/HOST), a line of output and a label in the lab: a
    control character, a slash or a bare ``.``/``..`` there would write
    outside the folder or forge a line, so such a name is refused where it is
    written rather than wherever it is used.
    """
    if not name.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character (a line break, a tab, NUL)"
    if "/" in name:
        return "holds a slash: a host's name is also a folder name"
    if name in (".", ".."):
        return "is not a name"
    return None
