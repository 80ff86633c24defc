"""How hosts are reached is input, checked before any host is contacted
(issue 14, small things): a missing key file is one line with its place."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import SVC_ROLE

# 127.87.0.0/16 is this test suite's own block; nothing listens on this address.
NOBODY = "127.87.0.9"


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Path:
    return make_tree(
        {
            **SVC_ROLE,
            "hosts.yml": f"""
                all:
                  vars:
                    svc_log: {tmp_path / "log"}
                  hosts:
                    alpha:
                      host: {NOBODY}
                      ssh_key: {tmp_path / "keys" / "missing_ed25519"}
            """,
        }
    )


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("command", [["check"], ["apply"], ["mail", "queue"], ["report"], ["rollback", "20261203T000000-00000000"]])
def test_a_missing_key_file_is_an_input_error_naming_its_line(project: Path, tmp_path: Path, command: list[str]) -> None:
    done = provision(*command, "-i", str(project))
    assert done.returncode == 1
    key = tmp_path / "keys" / "missing_ed25519"
    assert done.stderr.strip() == f"error: {project / 'hosts.yml'}:7:7: host alpha: the SSH key file {key} does not exist"
    assert "unreachable" not in done.stdout + done.stderr


def test_a_missing_key_file_is_an_input_error_with_either_ssh_transport(project: Path, tmp_path: Path) -> None:
    """``connection: paramiko`` (Ansible's name, issue 19) reads the same ssh_key: checked the same way."""
    override = tmp_path / "paramiko.yml"
    override.write_text("all:\n  hosts:\n    alpha: {connection: paramiko}\n")
    done = provision("check", "-i", str(project), "-i", str(override))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().endswith(f"host alpha: the SSH key file {tmp_path / 'keys' / 'missing_ed25519'} does not exist")
    assert "unreachable" not in done.stdout + done.stderr


def test_onboard_help_says_host_is_fully_qualified() -> None:
    text = provision("onboard", "--help").stdout
    assert "fully qualified domain name" in " ".join(text.split())
