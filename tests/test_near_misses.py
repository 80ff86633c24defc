"""A variable one edit away from a variable of a role applied to the host gets
a "did you mean" warning, with or without the role's prefix."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.roles.compiler import Project
from provision.roles.hostvars import one_edit_apart


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [
        ("postifx_mynetworks", "postfix_mynetworks", True),  # neighbours swapped
        ("postfix_mynetwork", "postfix_mynetworks", True),  # one letter short
        ("postfix_mynetworkss", "postfix_mynetworks", True),
        ("postfix_mynetwerks", "postfix_mynetworks", True),
        ("postfix_mynetworks", "postfix_mynetworks", False),
        ("pstfx_mynetworks", "postfix_mynetworks", False),
        ("mynetworks", "postfix_mynetworks", False),
        ("ab", "ba", True),
        ("abc", "cba", False),
    ],
)
def test_one_edit(a: str, b: str, near: bool) -> None:
    assert one_edit_apart(a, b) is near
    assert one_edit_apart(b, a) is near


def _project(make_tree: Callable[[dict[str, str]], Path], values: dict[str, object]) -> Path:
    return make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1:\n    mx2:\n",
            "group_vars/all.yml": yaml.safe_dump(values),
            "site.yml": "- hosts: all\n  roles: [postfix, motd]\n",
        }
    )


def test_typos_of_role_variables_are_warned_about(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _project(
        make_tree,
        {
            "postfix_myhostname": "mx.example.net",
            "postifx_mynetworks": ["192.0.2.0/24"],
            "mynetworks": ["192.0.2.0/24"],
            "relayhostt": "[relay.example.net]:587",
            "completely_unrelated": 1,
            "user": "root",
            "ansible_user": "root",
        },
    )
    compiled = Project.load(folder).compile("mx1")
    found = {w.message.split("'")[1]: w for w in compiled.warnings}
    assert set(found) == {"postifx_mynetworks", "mynetworks", "relayhostt"}
    assert "did you mean 'postfix_mynetworks' (role postfix)?" in found["postifx_mynetworks"].message
    assert "did you mean 'postfix_mynetworks'" in found["mynetworks"].message
    assert "did you mean 'postfix_relayhost'" in found["relayhostt"].message
    assert found["mynetworks"].location is not None and found["mynetworks"].location.file.endswith("group_vars/all.yml")


def test_the_warning_reaches_stderr_once_for_all_hosts(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    folder = _project(make_tree, {"postfix_myhostname": "mx.example.net", "postifx_mynetworks": ["192.0.2.0/24"]})
    done = subprocess.run(
        [sys.executable, "-m", "provision.cli", "render", "-i", str(folder), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "group_vars/all.yml" in warnings[0] and "postifx_mynetworks" in warnings[0] and "[mx1 and 1 more hosts]" in warnings[0]
