"""What a run adds to an inventory from the command line, as Ansible's
options do: the vault passwords, ``-e`` extra vars (above everything) and
the connection defaults of ``-u``, ``--private-key`` and ``-b`` (below the
inventory: a host's own ``ansible_user`` wins over ``-u``, as in Ansible),
and ``--skip-tags``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provision.errors import Location
from provision.inventory.vault import Vault


@dataclass(frozen=True)
class LoadOptions:
    vault: Vault | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    extra_var_locations: dict[str, Location] = field(default_factory=dict)
    connection_defaults: dict[str, Any] = field(default_factory=dict)
    skip_tags: frozenset[str] = frozenset()
    """--skip-tags: resources with any of these tags (a role's name is one of its tags) are left out."""
