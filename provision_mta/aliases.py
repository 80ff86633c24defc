"""Local recipients through aliases(5) and ~/.forward, as Postfix's local agent does.

A name expands to local users, other aliases and remote addresses, at most
20 levels deep and never twice. ``:include:/file`` and ``|command`` are
refused (the message bounces for that recipient with the reason) unless
``allow_mail_to_files`` / ``allow_mail_to_commands`` in main.cf name the
source (``alias``, ``forward``, or ``include``) — and then only includes
are followed: the MTA never runs commands.
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass, field
from pathlib import Path

from provision_mta.address import AddressError, Routing, route
from provision_mta.config import MtaConfig


def load_aliases(config: MtaConfig) -> dict[str, list[str]]:
    """Every alias file main.cf names (hash:/etc/aliases is built from the text file /etc/aliases: that is read)."""
    table: dict[str, list[str]] = {}
    for path in config.alias_files:
        if path.exists():
            table.update(parse_aliases(path.read_text()))
    return table


def parse_aliases(text: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and current is not None:
            table[current] += _targets(line)
            continue
        name, separator, rest = line.partition(":")
        if separator:
            current = name.strip().lower()
            table[current] = _targets(rest)
    return table


def _targets(text: str) -> list[str]:
    return [item.strip().strip('"') for item in text.split(",") if item.strip()]


@dataclass
class Expansion:
    local_users: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (target, why)


def expand(
    name: str,
    aliases: dict[str, list[str]],
    routing: Routing,
    allow_files: set[str],
    use_forward: bool = True,
) -> Expansion:
    """Expand one local name; a target with a domain (or % and !) is resolved by
    :func:`address.route`, the function intake decided with; a bare name is local."""
    result = Expansion()
    seen: set[str] = set()

    def walk(item: str, depth: int, source: str) -> None:
        if depth > 20:
            result.refused.append((item, "alias expansion is deeper than 20 levels"))
            return
        if item.startswith("|"):
            result.refused.append((item, "mail to commands is not allowed"))
            return
        if item.startswith(":include:"):
            if source not in allow_files and "include" not in allow_files:
                result.refused.append((item, f"mail to :include: files is not allowed from {source}"))
                return
            try:
                included = Path(item[len(":include:") :]).read_text()
            except OSError as exc:
                result.refused.append((item, f"cannot read include file: {exc}"))
                return
            for target in _targets(included.replace("\n", ",")):
                walk(target, depth + 1, "include")
            return
        if item.startswith("/"):
            result.refused.append((item, "mail to files is not allowed"))
            return
        key = item.lower()
        if depth > 0 and any(char in item for char in "@%!"):  # the name itself is routed already
            try:
                where = route(item, routing)
            except AddressError as exc:
                result.refused.append((item, f"not an address: {exc}"))
                return
            if not where.local:
                if where.address.lower() not in seen:
                    seen.add(where.address.lower())
                    result.remote.append(where.address)
                return
            key = where.user
        if key in seen:
            return
        seen.add(key)
        if key in aliases and depth < 20:
            for target in aliases[key]:
                # An alias that names itself delivers to the user of that name.
                if target.lower() == key:
                    result.local_users.append(key)
                else:
                    walk(target, depth + 1, "alias")
            return
        if use_forward:
            forward = _forward_of(key)
            if forward:
                for target in forward:
                    if target.lstrip("\\").lower() == key:
                        result.local_users.append(key)
                    else:
                        walk(target, depth + 1, "forward")
                return
        result.local_users.append(key)

    walk(name, 0, "alias")
    return result


def _forward_of(user: str) -> list[str]:
    try:
        home = Path(pwd.getpwnam(user).pw_dir)
        return _targets((home / ".forward").read_text().replace("\n", ","))
    except (KeyError, OSError):
        return []
