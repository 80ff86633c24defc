"""The layers the folders promise, checked on the imports themselves.

- nothing below ``provision/cli`` imports it (the library never needs the CLI);
- ``provision/agent`` is stdlib only, apart from its own modules, and the
  protocol's types it reads only while type checking;
- ``provision_mta`` imports nothing of ``provision`` (its wheel holds it alone);
- the lower layers never import the higher ones (inventory < roles < engine <
  report, onboard, mail, lab).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "provision"
# A layer may import its own and lower layers only.
LAYERS = ["inventory", "roles", "engine", "report", "onboard", "mail", "lab", "views", "cli"]
PEERS = {"report", "onboard", "mail", "lab", "views"}  # the features: may use each other, never the CLI


def _imports(path: Path, *, runtime_only: bool = False) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(child) for child in ast.walk(node))
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "provision" and parts[1] in LAYERS else None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_import(path: Path) -> None:
    own = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
    for name in _imports(path):
        other = _layer(name)
        if own is None or other is None or other == own:
            if own != "cli":
                assert other != "cli", f"{path} imports {name}: nothing below cli/ imports it"
            continue
        if own in PEERS and other in PEERS and "cli" not in (own, other):
            continue
        assert LAYERS.index(other) < LAYERS.index(own), f"{path} ({own}) imports {name} ({other}), a higher layer"


@pytest.mark.parametrize("path", sorted((PACKAGE / "agent").glob("*.py")), ids=lambda p: p.name)
def test_the_agent_is_stdlib_only(path: Path) -> None:
    for name in _imports(path, runtime_only=True):
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names or name.startswith("provision.agent"), f"{path.name} imports {name} at run time"
        assert name != "provision.agent.protocol", f"{path.name} needs the protocol only while type checking"


@pytest.mark.parametrize("path", sorted((ROOT / "provision_mta").glob("*.py")), ids=lambda p: p.name)
def test_the_mta_stands_alone(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] != "provision", f"provision_mta/{path.name} imports {name}"
