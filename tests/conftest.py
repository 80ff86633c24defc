"""Shared fixtures: paths, a CLI runner, and a project built in a temp folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def write_tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return base


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write a dict of relative path -> text into a fresh folder."""

    def make(files: dict[str, str]) -> Path:
        return write_tree(tmp_path / "project", files)

    return make


@pytest.fixture
def compile_role(make_tree: Callable[[dict[str, str]], Path]) -> Callable[[str, str, dict[str, Any]], dict[str, str]]:
    """Compile one role for one host on the controller: {path: rendered text}."""

    def compile_with(role: str, host: str, host_vars: dict[str, Any]) -> dict[str, str]:
        from provision.roles.compiler import Project

        folder = make_tree(
            {
                "hosts.yml": f"all:\n  hosts:\n    {host}:\n",
                f"host_vars/{host}.yml": yaml.safe_dump(host_vars),
                "site.yml": f"- hosts: all\n  roles: [{role}]\n",
            }
        )
        compiled = Project.load(folder).compile(host)
        return {path: entry.content.decode() for path, entry in compiled.desired.files.items()}

    return compile_with


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The commands the tests run keep their run log and labs in a folder of the
    test session's own (subprocesses inherit it), never in the user's."""
    import os

    os.environ["PROVISION_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
