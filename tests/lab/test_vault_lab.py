"""An Ansible estate's vault and -e, applied over real SSH to a real Debian host.

group_vars/all/ holds the classic Ansible pattern: a whole file encrypted by
``ansible-vault encrypt`` (vault_* variables) beside a plain file that refers
to them, plus an inline ``!vault`` value. The host must get the decrypted
values and the -e value (which wins over group_vars); no output of the run
may show them; without the password nothing is pushed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provision.lab.lab import Lab
from tests.support.ansible_ref import vault_encrypt_file, vault_encrypt_string
from tests.support.lab import module_lab

pytestmark = pytest.mark.lab

vault_lab = module_lab("vault", 1)
CONTACT = "vault-ops@example.net"
MESSAGE = "Inline-Vaulted-Welcome-2718"


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=900)


def estate(folder: Path, host: str) -> Path:
    folder.mkdir()
    (folder.parent / "pw").write_text("lab vault password\n")  # beside the inventory folder: every file in it is an inventory
    (folder / "hosts.yml").write_text(f"all:\n  hosts:\n    {host}:\n")
    (folder / "site.yml").write_text("- hosts: all\n  roles: [motd]\n")
    (folder / "group_vars/all").mkdir(parents=True)
    secret = folder / "group_vars/all/vault.yml"
    secret.write_text(f"vault_motd_contact: {CONTACT}\n")
    vault_encrypt_file(folder.parent / "pw", secret)
    plain = 'motd_contact: "{{ vault_motd_contact }}"\nmotd_lines: [from group_vars]\n'
    (folder / "group_vars/all/vars.yml").write_text(plain + vault_encrypt_string(folder.parent / "pw", MESSAGE, "motd_message"))
    return folder


def test_vaulted_group_vars_and_extra_vars_over_ssh(vault_lab: Lab, tmp_path: Path) -> None:
    host = vault_lab.hosts()[0].name
    project = estate(tmp_path / "estate", host)
    inventory = ["-i", str(project), "-i", str(vault_lab.inventory_file)]
    password = ["--vault-password-file", str(project.parent / "pw")]
    extra = ["-e", '{"motd_lines": ["from extra vars"]}']

    first = provision("apply", *inventory, *password, *extra, "--json", "--diff")
    assert first.returncode == 0, first.stdout + first.stderr
    code, motd = vault_lab.exec(host, ["cat", "/etc/motd"])
    assert code == 0
    assert MESSAGE in motd and CONTACT in motd  # decrypted on the controller, delivered to the host
    assert "from extra vars" in motd and "from group_vars" not in motd  # -e wins over group_vars

    vault_lab.exec(host, ["sh", "-c", "echo tampered > /etc/motd"])
    drift = provision("check", *inventory, *password, *extra, "--diff")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "secret content changed" in drift.stdout

    refused = provision("apply", *inventory, *extra)  # no password: an error before anything is pushed
    assert refused.returncode == 1
    assert f"{project / 'group_vars/all/vault.yml'}: this is encrypted with Ansible Vault" in refused.stderr
    assert vault_lab.exec(host, ["cat", "/etc/motd"])[1] == "tampered\n"

    for run in (first, drift, refused):
        assert MESSAGE not in run.stdout + run.stderr and CONTACT not in run.stdout + run.stderr


def test_extra_vars_choose_the_login_user_over_the_inventory_short_name(vault_lab: Lab, tmp_path: Path) -> None:
    """The lab's inventory says ``user: root`` for all hosts; ``-e ansible_user=...``
    is above every inventory layer in Ansible and must decide who logs in (the
    short name won before, so this check logged in as root and passed)."""
    host = vault_lab.hosts()[0].name
    project = tmp_path / "plain"
    project.mkdir()
    (project / "hosts.yml").write_text(f"all:\n  hosts:\n    {host}:\n")
    (project / "site.yml").write_text("- hosts: all\n  roles: [motd]\n")
    inventory = ["-i", str(project), "-i", str(vault_lab.inventory_file)]
    refused = provision("check", *inventory, "-e", "ansible_user=nobody-here")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nobody-here" in refused.stdout + refused.stderr and "Traceback" not in refused.stderr
    chosen = provision("check", *inventory, "-e", "ansible_ssh_user=root")
    assert chosen.returncode in (0, 2), chosen.stdout + chosen.stderr
