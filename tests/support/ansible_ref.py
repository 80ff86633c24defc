"""The reference: real ansible-core commands (a test dependency), run the way
the tests compare against them, with Ansible's chatter turned off."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

needs_ansible = pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-core is a test dependency")

QUIET = {
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_NOCOLOR": "1",
}


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, **QUIET, **(extra or {})}


def ansible_inventory(sources: Sequence[str | Path] | str | Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``ansible-inventory -i ... ARGS`` parsed as JSON (--list, --host H)."""
    listed = [sources] if isinstance(sources, str | Path) else sources
    command = ["ansible-inventory", *[a for s in listed for a in ("-i", str(s))], *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=_env(env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ansible_graph(sources: Sequence[str | Path] | str | Path, *groups: str, env: dict[str, str] | None = None) -> str:
    """``ansible-inventory --graph [GROUP]``."""
    listed = [sources] if isinstance(sources, str | Path) else sources
    command = ["ansible-inventory", *[a for s in listed for a in ("-i", str(s))], "--graph", *groups]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=_env(env))
    return done.stdout.strip()


def ansible_list_hosts(source: str | Path, pattern: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """``ansible PATTERN --list-hosts``: the host names, in Ansible's order."""
    done = subprocess.run(
        ["ansible", "-i", str(source), pattern, "--list-hosts", *args], capture_output=True, text=True, check=False, env=_env(env)
    )
    if done.returncode != 0 and "no hosts" in (done.stdout + done.stderr).lower():
        return []
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    return [line for line in lines if line and not line.startswith("hosts (")]


def vault_encrypt_string(password_file: Path, plaintext: str, name: str, vault_id: str | None = None) -> str:
    """What ``ansible-vault encrypt_string`` prints: ``NAME: !vault |`` and the payload."""
    label = ["--vault-id", f"{vault_id}@{password_file}"] if vault_id else ["--vault-password-file", str(password_file)]
    done = subprocess.run(
        ["ansible-vault", "encrypt_string", *label, "--name", name, "--", plaintext],
        capture_output=True,
        text=True,
        check=True,
        env=_env(None),
    )
    return done.stdout


def vault_encrypt_file(password_file: Path, path: Path, vault_id: str | None = None) -> None:
    """``ansible-vault encrypt FILE`` in place."""
    label = ["--vault-id", f"{vault_id}@{password_file}"] if vault_id else ["--vault-password-file", str(password_file)]
    subprocess.run(["ansible-vault", "encrypt", *label, str(path)], capture_output=True, text=True, check=True, env=_env(None))


def provision(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``provision`` command (from PATH, as the user runs it)."""
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, env=_env(env), cwd=cwd, input=stdin)
