"""What onboarding must not get wrong about the rest of the inventory.

- The connection variables it writes must be the ones that win: provision
  reads ``host`` before ``ansible_host`` (and ``user``, ``port``, ``ssh_key``
  before their Ansible names), so for a host whose inventory already sets
  ``host:``, an ``ansible_host`` in host_vars would change nothing.
- An outgoing address belongs to one host: an address that another host of
  the inventory already binds (a transport's ``bind_address``) or listens on
  (``inet_interfaces``), written literally or through a template, is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from provision.connectors import ALIASES
from provision.errors import Location

# The Ansible names onboarding's --ssh-* options set, and provision's own name for each.
SSH_NAMES = {"ansible_host": "host", "ansible_user": "user", "ansible_port": "port", "ansible_ssh_private_key_file": "ssh_key"}


def winning_ssh_names(ssh: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``ssh`` (ansible_* names) renamed to what wins for a host whose variables are ``current``."""
    renamed: dict[str, Any] = {}
    for name, value in ssh.items():
        short = SSH_NAMES.get(name)
        renamed[short if short is not None and short in current else name] = value
    return renamed


def _winner(values: dict[str, Any], short: str) -> str | None:
    return next((name for name in (short, *ALIASES.get(short, ())) if name in values), None)


def ssh_setting_problems(ssh: dict[str, Any], values: dict[str, Any], where: Callable[[str], Location | None]) -> list[str]:
    """Each requested connection setting that the host's merged variables do not end up with, and why."""
    problems = []
    for name, wanted in ssh.items():
        if wanted is None:
            continue
        short = SSH_NAMES.get(name, name)
        winner = _winner(values, short)
        if winner is not None and str(values[winner]) == str(wanted):
            continue
        place = where(winner) if winner else None
        found = f"{winner} is {values[winner]!r}" + (f" in {place}" if place else "") if winner else "nothing sets it"
        problems.append(f"{short} would not be {wanted!r}: {found}, which wins")
    return problems


def _normal(text: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text).strip("[]")))
    except ValueError:
        return None


def claimed_addresses(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(address, how) for every address a host's Postfix variables bind or listen on."""
    claims: list[tuple[str, str]] = []
    instances: list[tuple[str, dict[str, Any]]] = [("", values)]
    instances += [(f"instance {i.get('name')} ", i) for i in values.get("postfix_instances") or [] if isinstance(i, dict)]
    for prefix, scope in instances:
        transports = scope.get("postfix_transports") if not prefix else scope.get("transports")
        for transport in transports or []:
            if isinstance(transport, dict) and _normal(transport.get("bind_address")):
                claims.append((str(_normal(transport["bind_address"])), f"{prefix}transport {transport.get('name')} binds it"))
        interfaces = scope.get("postfix_inet_interfaces") if not prefix else scope.get("inet_interfaces")
        for interface in interfaces or []:
            if _normal(interface):
                claims.append((str(_normal(interface)), f"{prefix}listens on it (inet_interfaces)"))
    return claims


def address_conflicts(addresses: list[str], others: dict[str, dict[str, Any]]) -> list[str]:
    """For each of ``addresses`` that another host claims: which host, and how."""
    wanted = {str(_normal(a)): a for a in addresses if _normal(a)}
    found = []
    for host, values in others.items():
        for address, how in claimed_addresses(values):
            if address in wanted:
                found.append(f"{wanted[address]} belongs to host {host}: its {how}")
    return found
