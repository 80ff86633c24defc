"""``provision test`` (molecule's lifecycle without Ansible) and ``molecule test``."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_tree
from tests.support.lab import NAMESPACE, engine_ready

pytestmark = pytest.mark.lab


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISION_LAB_NAMESPACE": NAMESPACE}
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=cwd, timeout=900, env=env)


def test_provision_test_passes_for_the_default_scenario() -> None:
    engine_ready()
    done = run("provision", "test", "sshd")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split(":")[0] for line in done.stderr.splitlines()]
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert step in steps
    assert "idempotence: 1 host(s), 0 changed" in done.stderr
    assert "3 passed" in done.stdout


def test_provision_test_fails_a_role_that_is_not_idempotent(tmp_path: Path) -> None:
    engine_ready()
    write_tree(
        tmp_path,
        {
            "roles/flappy/role.yml": """
            description: Writes a different file on every run.
            files:
              - dest: /etc/flappy
                content: "{{ range(1000000) | random }}"
        """,
            "roles/flappy/molecule/default/hosts.yml": "all:\n  hosts:\n    flappy:\n",
            "roles/flappy/molecule/default/site.yml": "- hosts: all\n  roles: [flappy]\n",
        },
    )
    done = run("provision", "test", "flappy", cwd=tmp_path)
    assert done.returncode == 1
    assert "idempotence: the second converge changed:" in done.stderr and "flappy: /etc/flappy (content)" in done.stderr
    assert "destroy" in done.stderr  # the lab is removed even when a step fails
    assert not any(line.startswith(f"{NAMESPACE}-flappy") for line in run("docker", "ps", "-a", "--format", "{{.Names}}").stdout.split())


def test_provision_test_fails_when_verify_fails(tmp_path: Path) -> None:
    engine_ready()
    scenario = tmp_path / "molecule" / "default"
    shutil.copytree(ROOT / "molecule" / "default", scenario, ignore=shutil.ignore_patterns("__pycache__"))
    (scenario / "tests" / "test_wrong.py").write_text(
        textwrap.dedent("""
        def test_wrong_expectation(host):
            assert "MaxAuthTries 99" in host.file("/etc/ssh/sshd_config.d/provision.conf").content_string
    """)
    )
    done = run("provision", "test", "sshd", cwd=tmp_path)
    assert done.returncode == 1 and "verify: testinfra tests failed" in done.stderr


@pytest.mark.skipif(shutil.which("molecule") is None, reason="molecule is in the test extra")
def test_molecule_test_passes() -> None:
    engine_ready()
    done = subprocess.run(
        ["molecule", "test"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "3 passed" in output
    assert "idempotence" in output
