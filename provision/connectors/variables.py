"""The names a connection setting goes by, and how layers of variables set them.

Ansible's names are accepted so that an existing inventory works unchanged
(``ansible_user``, ``ansible_ssh_user``), beside provision's own short ones
(``user``). They are one setting: whichever name a higher layer of variables
sets (host over group, ``-e`` over the inventory) wins over every name a
lower layer set. Within one layer, provision's short name wins.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

ALIASES = {
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "ssh_key": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "connection": ("ansible_connection",),
    "become": ("ansible_become",),
    "python": ("ansible_python_interpreter",),
}


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """The value of setting ``name`` (a short name) in merged variables, or None."""
    if name in values:
        return values[name]
    for alias in ALIASES.get(name, ()):
        if alias in values:
            return values[alias]
    return None


def overlay(merged: MutableMapping[str, Any], layer: Mapping[str, Any]) -> dict[str, str]:
    """``merged.update(layer)``, where a layer that sets a connection setting by
    any of its names also sets the names of it that lower layers set, to the
    same value (else ``user:`` in group_vars would beat ``ansible_user`` in
    host_vars or on ``-e``, and ``{{ ansible_user }}`` would name an account
    nobody logs in as). Returns each name so set -> the layer's name it took
    the value of."""
    taken = {}
    for short, names in ALIASES.items():
        setting = (short, *names)
        given = [name for name in setting if name in layer]
        if not given:
            continue
        for other in setting:
            if other not in layer and other in merged:
                merged[other] = layer[given[0]]  # the name ``lookup`` reads first
                taken[other] = given[0]
    merged.update(layer)
    return taken
