"""Files made on the controller rather than rendered: ``build: NAME`` in a role's file entry.

Builders register themselves as entry points in the group
``provision.builders`` (the MTA's wheel is ``mta_wheel``, declared in
pyproject.toml), so the role system never imports the packages that build.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "provision.builders"


@cache
def _builders() -> dict[str, EntryPoint]:
    # Imported here: reading the installed packages' metadata is slow, and only roles with ``build:`` need it.
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=GROUP)}


def builder_names() -> list[str]:
    return sorted(_builders())


def build(name: str) -> bytes:
    """Loaded only when a role ships the artifact: most runs never import a builder."""
    data = _builders()[name].load()()
    if not isinstance(data, bytes):
        raise TypeError(f"builder {name!r} returned {type(data).__name__}, not bytes")
    return data
