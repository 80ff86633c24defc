"""A host whose python3 is older than the agent supports is refused with its
version named, before anything is pushed (the bootstrap checks it before it
reads the agent's code). Python 3.7 does not run on this machine, so the old
interpreter is this machine's python3 told by a sitecustomize that it is 3.7.3."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from provision.cli import main


def project(make_tree: Callable[[dict[str, str]], Path], root: Path, python: str) -> Path:
    root.mkdir(exist_ok=True)
    return make_tree(
        {
            "hosts.yml": f"all:\n  hosts:\n    old1:\n      connection: local\n      provision_root: {root}\n      python: {python}\n",
            "site.yml": "- hosts: all\n  roles: [motd]\n",
        }
    )


def old_python(folder: Path) -> Path:
    (folder / "sitecustomize.py").write_text('import sys\nsys.version_info = (3, 7, 3, "final", 0)\nsys.version = "3.7.3 (shim)"\n')
    shim = folder / "python3.7"
    # The agent runs with -I -S (no environment, no site): the shim drops them so its sitecustomize loads.
    drop = 'for a; do shift; case "$a" in -I|-S) ;; *) set -- "$@" "$a";; esac; done\n'
    shim.write_text(f'#!/bin/sh\n{drop}PYTHONPATH={folder} exec python3 "$@"\n')
    shim.chmod(0o755)
    return shim


def test_an_old_host_python_is_refused_by_version_and_nothing_is_pushed(
    make_tree: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    (tmp_path / "shim").mkdir()
    folder = project(make_tree, tmp_path / "root", str(old_python(tmp_path / "shim")))
    done = CliRunner().invoke(main, ["apply", "-i", str(folder), "--json"])
    assert done.exit_code == 1
    host = json.loads(done.stdout)["hosts"]["old1"]
    assert host["status"] == "failed" and host["round_trips"] == 1
    assert host["errors"] == [
        "probe: python3 on the host is Python 3.7.3; provision needs Python 3.9 or later there (Debian 11 and later ship it)"
    ]
    assert not any((tmp_path / "root").iterdir())


def test_the_same_host_with_a_supported_python_converges(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    folder = project(make_tree, tmp_path / "root", "python3")
    done = CliRunner().invoke(main, ["apply", "-i", str(folder), "--json"])
    assert done.exit_code == 0, done.stdout
    assert (tmp_path / "root/etc/motd").exists()
