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
from provision.inventory.model import Inventory

_SUBSCRIPT = re.compile(r"^(?P<name>.+?)\[(?P<start>-?\d+)(?::(?P<end>-?\d*))?\]$")


def split_pattern(pattern: str) -> list[str]:
    """Split on ',' and on ':' (but not inside [...] and not in IPv6 addresses)."""
    if "," in pattern:
        return [p.strip() for p in pattern.split(",") if p.strip()]
    parts: list[str] = []
    current, depth = "", 0
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _ordered(terms: list[str]) -> list[str]:
    regular = [t for t in terms if t[0] not in "!&"]
    intersections = [t for t in terms if t[0] == "&"]
    exclusions = [t for t in terms if t[0] == "!"]
    return (regular or ["all"]) + intersections + exclusions


def _hosts_of_group(inventory: Inventory, group: str) -> list[str]:
    seen: dict[str, None] = {}
    stack = [group]
    visited: set[str] = set()
    while stack:
        name = stack.pop(0)
        if name in visited:
            continue
        visited.add(name)
        entry = inventory.groups[name]
        for host in entry.hosts:
            seen.setdefault(host, None)
        stack.extend(entry.children)
    return list(seen)


def _match_term(inventory: Inventory, term: str) -> list[str]:
    if term in ("all", "*"):
        return list(inventory.hosts)
    if term in inventory.groups:
        return _hosts_of_group(inventory, term)
    if term in inventory.hosts:
        return [term]
    subscript = _SUBSCRIPT.match(term)
    if subscript and subscript.group("name") in inventory.groups:
        members = _hosts_of_group(inventory, subscript.group("name"))
        start = int(subscript.group("start"))
        end_text = subscript.group("end")
        if end_text is None:
            return members[start : start + 1] if start != -1 else members[-1:]
        end = int(end_text) + 1 if end_text else len(members)
        return members[start:end]
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise PatternError(f"bad regular expression in host pattern {term!r}: {exc}") from None
        names = [g for g in inventory.groups if regex.match(g)]
        hosts = [h for h in inventory.hosts if regex.match(h)]
    else:
        names = fnmatch.filter(inventory.groups, term)
        hosts = fnmatch.filter(inventory.hosts, term)
    found: dict[str, None] = dict.fromkeys(hosts)
    for group in names:
        found.update(dict.fromkeys(_hosts_of_group(inventory, group)))
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
