"""``provision test`` (molecule's lifecycle without Ansible) and ``molecule test``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from provision.roles.loader import available_roles
from tests.conftest import ROOT, write_tree
from tests.support.lab import NAMESPACE, engine_ready

pytestmark = pytest.mark.lab


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVISION_LAB_NAMESPACE": NAMESPACE}
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=cwd, timeout=900, env=env)


BUNDLED = available_roles([ROOT / "roles"])


def test_every_bundled_role_passes_its_own_scenario(tmp_path: Path) -> None:
    """roles/ROLE/molecule/default/ checks the role's real effect; run from any folder, the bundled one is found.

    All at once, each on a lab of its own: package installs overlap, which
    halves the wall time on two cores (72-104 s against 190 s one after another)."""
    engine_ready()
    env = {**os.environ, "PROVISION_LAB_NAMESPACE": NAMESPACE}
    folders = {role: ROOT / "roles" / role / "molecule" / "default" for role in BUNDLED}
    before = {role: sorted(p.name for p in folder.iterdir()) for role, folder in folders.items()}
    runs = {
        role: subprocess.Popen(
            ["provision", "test", role], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env
        )
        for role in BUNDLED
    }
    outputs = {role: run.communicate(timeout=900) for role, run in runs.items()}
    failed = {role: err[-3000:] for role, (_, err) in outputs.items() if runs[role].returncode != 0}
    assert not failed, failed
    # Nothing written into a bundled scenario (it may be a read-only install): no DKIM records,
    # CSRs or local CA beside its inventory, no test run's droppings.
    assert {role: sorted(p.name for p in folder.iterdir()) for role, folder in folders.items()} == before
    for role, (out, err) in outputs.items():
        steps = [line.split(":")[0] for line in err.splitlines()]
        assert all(step in steps for step in ("create", "converge", "idempotence", "verify", "destroy")), (role, err)
        # Each scenario on the default release, said since issue 17 (provision test --suite).
        assert "idempotence: 1 host(s), 0 changed" in err and f"{role}/default on bookworm: passed" in err, (role, err)
        assert f"roles/{role}/molecule/default" in err and " passed" in out and "failed" not in out, (role, out)


def test_every_bundled_role_ships_a_scenario_with_checks() -> None:
    for role in BUNDLED:
        folder = ROOT / "roles" / role / "molecule" / "default"
        assert (folder / "hosts.yml").is_file() and (folder / "site.yml").is_file(), role
        assert any((folder / "tests").glob("test_*.py")), role


def test_a_kept_scenario_lab_is_found_by_name_from_any_folder(tmp_path: Path) -> None:
    engine_ready()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run("provision", "test", "motd", "--name", "kept-motd", "--keep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kept: the lab is still up (provision lab status --name kept-motd" in done.stderr
    try:
        status = run("provision", "lab", "status", "--name", "kept-motd", "--json", cwd=elsewhere)
        assert status.returncode == 0, status.stderr
        ((row),) = json.loads(status.stdout)
        assert row["host"] == "motd1" and row["container"] == "running" and row["ssh"].startswith("SSH-2.0-")
        inventory = run("provision", "lab", "inventory", "--name", "kept-motd", cwd=elsewhere)
        assert "# lab_addresses: 3 more loopback addresses" in inventory.stdout and "lab_addresses: [" in inventory.stdout
        path = run("provision", "lab", "inventory", "--name", "kept-motd", "--path", cwd=elsewhere).stdout.strip()
        assert Path(path).is_file() and not (elsewhere / ".lab").exists() and not (tmp_path / ".lab").exists()
    finally:
        down = run("provision", "lab", "down", "--name", "kept-motd", cwd=elsewhere)
    removed = down.stderr.splitlines()
    assert f"removed container {NAMESPACE}-kept-motd-1" in removed
    assert sum(line.startswith("removed address 127.") for line in removed) == 4  # its own and three lab_addresses
    assert f"removed file {path}" in removed
    again = run("provision", "lab", "status", "--name", "kept-motd", cwd=elsewhere)
    assert again.returncode == 1 and "lab 'kept-motd' is not up" in again.stderr
    nothing = run("provision", "lab", "down", "--name", "kept-motd", cwd=elsewhere)
    assert nothing.returncode == 0 and "had nothing to remove" in nothing.stderr


def test_provision_test_fails_a_role_that_is_not_idempotent(tmp_path: Path) -> None:
    engine_ready()
    write_tree(
        tmp_path,
        {
            "roles/flappy/role.yml": """
            description: Writes a different file on every run.
            files:
              - dest: /etc/flappy
                content: "{{ range(100000) | random }}"
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
        # The lab's containers in this run's namespace, as every other lab test's (two runs on one machine never share them).
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PROVISION_LAB_NAMESPACE": NAMESPACE},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "3 passed" in output
    assert "idempotence" in output
