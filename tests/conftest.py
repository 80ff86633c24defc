"""Shared fixtures: paths, a CLI runner, and a project built in a temp folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

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
