"""Ansible host patterns for ``--limit`` and site.yml's ``hosts:``.

``web``, ``mx01``, ``web:db`` (union), ``web:&prod`` (intersection),
``web:!mx01`` (exclusion), globs (``mx*``), ``~regex``, ``all`` / ``*``,
subscripts (``web[0]``, ``web[1:3]``), and commas as separators. Like
Ansible, unions are applied first, then intersections, then exclusions.
"""

from __future__ import annotations

import fnmatch
import re

from provision.errors import PatternError
from provision.inventory.hostranges import parse_address
from provision.inventory.model import Inventory

_SUBSCRIPT = re.compile(r"^(?P<name>.+?)\[(?P<start>-?\d+)(?::(?P<end>-?\d*))?\]$")


_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def split_pattern(pattern: str) -> list[str]:
    """Split on ',', else on ':' as Ansible does: not inside [...], and not at
    all when the whole pattern is one address (an IPv6 address, host:port)."""
    if "," in pattern:
        return [p.strip() for p in pattern.split(",") if p.strip()]
    if parse_address(pattern.strip()) is not None:
        return [pattern.strip()] if pattern.strip() else []
    return _TERM.findall(pattern)


def _ordered(terms: list[str]) -> list[str]:
    regular = [t for t in terms if t[0] not in "!&"]
    intersections = [t for t in terms if t[0] == "&"]
    exclusions = [t for t in terms if t[0] == "!"]
    return (regular or ["all"]) + intersections + exclusions


def _hosts_of_group(inventory: Inventory, group: str) -> list[str]:
    """Hosts of a group and its descendants, level by level, as Ansible orders them."""
    ordered = [group]
    seen = {group}
    level = [group]
    while level:
        next_level: list[str] = []
        for name in level:
            for child in inventory.groups[name].children:
                if child not in seen:
                    seen.add(child)
                    ordered.append(child)
                    next_level.append(child)
        level = next_level
    hosts: dict[str, None] = {}
    for name in ordered:
        hosts.update(dict.fromkeys(inventory.groups[name].hosts))
    return list(hosts)


def _match_term(inventory: Inventory, term: str) -> list[str]:
    if term == "all":
        return _hosts_of_group(inventory, "all")
    subscript = _SUBSCRIPT.match(term)
    if subscript and subscript.group("name") in inventory.groups:
        members = _hosts_of_group(inventory, subscript.group("name"))
        start = int(subscript.group("start"))
        end_text = subscript.group("end")
        if end_text is None:
            return members[start : start + 1] if start != -1 else members[-1:]
        end = int(end_text) + 1 if end_text else len(members)
        return members[start:end]
    try:
        regex = re.compile(term[1:] if term.startswith("~") else fnmatch.translate(term))
    except re.error as exc:
        raise PatternError(f"bad regular expression in host pattern {term!r}: {exc}") from None
    groups = [g for g in inventory.groups if regex.match(g)]
    found: dict[str, None] = {}
    for group in groups:
        found.update(dict.fromkeys(_hosts_of_group(inventory, group)))
    # Like Ansible: a plain word that names a group does not also match hosts.
    if not groups or term.startswith("~") or any(c in term for c in ".?*["):
        found.update(dict.fromkeys(h for h in inventory.hosts if regex.match(h)))
    return list(found)


def select_hosts(inventory: Inventory, pattern: str) -> list[str]:
    """Hosts matched by ``pattern``, in the order the pattern names them."""
    selected: dict[str, None] = {}
    for term in _ordered(split_pattern(pattern)):
        if term.startswith("&"):
            keep = set(_match_term(inventory, term[1:]))
            selected = {h: None for h in selected if h in keep}
        elif term.startswith("!"):
            drop = set(_match_term(inventory, term[1:]))
            selected = {h: None for h in selected if h not in drop}
        else:
            selected.update(dict.fromkeys(_match_term(inventory, term)))
    return list(selected)
