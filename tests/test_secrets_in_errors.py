"""No error, warning or --json field holds a secret value, or any line of one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.engine.diffs import mask
from provision.errors import VariableError
from provision.roles.compiler import Project

ROLE = """
variables:
  vault_password: {type: str, secret: true, pattern: "[a-z]+", description: A secret with a pattern.}
  vault_port: {type: int, secret: true, default: 1, description: A secret number.}
  vault_users:
    type: list
    default: []
    description: Users with their tokens.
    elements:
      type: dict
      options:
        name: {type: str, required: true}
        token: {type: str, secret: true, pattern: "[0-9a-f]{8}"}
  vault_keys: {type: list, secret: true, elements: {type: str, choices: [a, b]}, default: [], description: Secret list.}
files:
  - dest: /etc/vault.conf
    content: "{{ vault_password }}\\n"
"""


def _project(make_tree: Callable[[dict[str, str]], Path], values: dict[str, object]) -> Path:
    return make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    h1:\n",
            "host_vars/h1.yml": yaml.safe_dump(values),
            "site.yml": "- hosts: all\n  roles: [vault]\n",
            "roles/vault/role.yml": ROLE,
        }
    )


SECRET = "Sup3r-Secret-Value"


@pytest.mark.parametrize(
    "values",
    [
        {"vault_password": SECRET},
        {"vault_password": "ok", "vault_port": SECRET},
        {"vault_password": "ok", "vault_users": [{"name": "ann", "token": SECRET}]},
        {"vault_password": "ok", "vault_keys": [SECRET]},
        {"vault_password": "ok {% if %}" + SECRET},
    ],
)
def test_a_secret_that_fails_its_check_is_not_in_the_error(make_tree: Callable[[dict[str, str]], Path], values: dict[str, object]) -> None:
    folder = _project(make_tree, values)
    with pytest.raises(VariableError) as raised:
        Project.load(folder).compile("h1")
    text = str(raised.value)
    assert "Sup3r" not in text and "Secret-Value" not in text
    assert "not shown" in text
    done = subprocess.run(
        [sys.executable, "-m", "provision.cli", "render", "-i", str(folder), "--out", str(folder / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Sup3r" not in done.stdout + done.stderr and "not shown" in done.stderr


def test_a_non_secret_value_is_still_shown(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _project(make_tree, {"vault_password": "ok", "vault_users": [{"name": "bad name\tx", "token": "0123abcd"}]})
    Project.load(folder).compile("h1")  # tabs are fine on one line: compiles
    folder = _project(make_tree, {"vault_password": "ok", "vault_users": [{"name": ["not", "a string"], "token": "0123abcd"}]})
    with pytest.raises(VariableError, match="got a list"):
        Project.load(folder).compile("h1")


def test_each_line_of_a_multi_line_secret_is_masked() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
    echoed = "sshd: bad line 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' in file\nand BKcwggSjAgEAAoIBAQC7"
    masked = mask(echoed, [key])
    assert "MIIEvQ" not in masked and "BKcwgg" not in masked
    assert masked.startswith("sshd: bad line '********' in file")
