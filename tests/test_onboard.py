"""Onboarding without a host: the inventory edit (comments kept, user's keys
never overwritten), the dry run (nothing written) and the refusals."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.errors import ProvisionError
from provision.onboard.inventory_edit import plan_inventory_edit, write
from provision.onboard.transports import onboard_vars
from tests.support.ansible_ref import needs_ansible, vault_encrypt_file

HOSTS = """\
# Mail fleet. Keep the relays sorted.
all:
  children:
    mail:            # outbound relays
      hosts:
        mx0.example.test:   # the old one
          ansible_host: 127.0.0.250
    web:
      hosts:
        www.example.test:
"""
SITE = "- hosts: mail\n  roles: [postfix]\n- hosts: web\n  roles: [motd]\n"


@pytest.fixture
def inventory(make_tree: Callable[[dict[str, str]], Path]) -> Path:
    return make_tree({"hosts.yml": HOSTS, "site.yml": SITE, "group_vars/mail.yml": "postfix_myhostname: mx.example.test\n"})


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"})


def test_edit_keeps_comments_and_order_and_adds_the_host(inventory: Path) -> None:
    values = onboard_vars("mx1.example.test", ["127.70.0.1", "127.70.0.2"], {"ansible_host": "127.70.0.9"}, dt.date(2026, 12, 1))
    edit = plan_inventory_edit(inventory, "mx1.example.test", "mail", values)
    write(edit)
    text = (inventory / "hosts.yml").read_text()
    assert text == HOSTS.replace(
        "          ansible_host: 127.0.0.250\n", "          ansible_host: 127.0.0.250\n        mx1.example.test:\n"
    )
    written = yaml.safe_load((inventory / "host_vars/mx1.example.test.yml").read_text())
    assert written["postfix_transports"] == [
        {"name": "out1", "bind_address": "127.70.0.1", "helo_name": "out1.mx1.example.test", "warmup": {"start": "2026-12-01"}},
        {"name": "out2", "bind_address": "127.70.0.2", "helo_name": "out2.mx1.example.test", "warmup": {"start": "2026-12-01"}},
    ]
    assert written["postfix_sender_transports"] == {
        "provision-verify+out1@mx1.example.test": "out1",
        "provision-verify+out2@mx1.example.test": "out2",
    }
    again = plan_inventory_edit(inventory, "mx1.example.test", "mail", values)
    assert not again.changed and again.kept_keys == list(values)


def test_a_key_the_user_set_is_kept(inventory: Path) -> None:
    (inventory / "host_vars").mkdir()
    mine = "# my relay\npostfix_transports:  # chosen by hand\n  - {name: out7, bind_address: 127.70.0.7}\n"
    (inventory / "host_vars/mx1.example.test.yml").write_text(mine)
    edit = plan_inventory_edit(inventory, "mx1.example.test", "mail", onboard_vars("mx1.example.test", ["127.70.0.1"], {}))
    write(edit)
    text = (inventory / "host_vars/mx1.example.test.yml").read_text()
    assert text.startswith(mine) and "out7" in text and "out1.mx1" not in text.split("postfix_sender_transports")[0]
    assert edit.kept_keys == ["postfix_transports"]


def test_new_group_is_created_under_all(inventory: Path) -> None:
    write(plan_inventory_edit(inventory, "mx1.example.test", "bulk", {}))
    data = yaml.safe_load((inventory / "hosts.yml").read_text())
    assert data["all"]["children"]["bulk"] == {"hosts": {"mx1.example.test": None}}
    assert (inventory / "hosts.yml").read_text().startswith("# Mail fleet. Keep the relays sorted.\n")


def test_dry_run_shows_the_edit_and_files_and_writes_nothing(inventory: Path) -> None:
    before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    done = provision("onboard", "mx1.example.test", "-i", str(inventory), "-g", "mail", "-a", "127.70.0.1", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "+        mx1.example.test:" in done.stdout
    assert "+    helo_name: out1.mx1.example.test" in done.stdout
    assert "/etc/postfix/master.cf" in done.stdout and "dry run: nothing written" in done.stdout
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mx1", "-g", "mail"], "fully qualified name"),
        (["mx1.example.test", "-g", "mail", "-a", "300.1.1.1"], "--address '300.1.1.1': not an IP address"),
        (["mx1.example.test", "-g", "mail", "-a", "127.70.0.1", "-a", "127.70.0.1"], "given twice"),
        (["mx1.example.test", "-g", "web", "-a", "127.70.0.1"], "needs the postfix role"),
        (["mx1.example.test", "-g", "nowhere"], "no play in site.yml applies a role to group 'nowhere'"),
    ],
)
def test_refusals_name_the_problem_and_write_nothing(inventory: Path, args: list[str], message: str) -> None:
    before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    done = provision("onboard", *args[:1], "-i", str(inventory), *args[1:])
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == before


def test_a_bad_variable_is_reported_in_the_users_file_not_the_scratch_copy(inventory: Path) -> None:
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars/mx1.example.test.yml").write_text("postfix_transport_selection: sometimes\n")
    done = provision("onboard", "mx1.example.test", "-i", str(inventory), "-g", "mail", "--dry-run")
    assert done.returncode == 1
    assert f"error: {inventory}/host_vars/mx1.example.test.yml:1:" in done.stderr
    assert "postfix_transport_selection" in done.stderr and "provision-onboard-" not in done.stderr


def test_ini_inventory_is_refused(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = make_tree({"hosts.ini": "[mail]\nmx0.example.test\n", "site.yml": SITE})
    with pytest.raises(ProvisionError, match="YAML inventories"):
        plan_inventory_edit(folder, "mx1.example.test", "mail", {})


@pytest.mark.parametrize(
    ("mx0_vars", "address", "how"),
    [
        ("postfix_transports: [{name: out1, bind_address: 127.70.0.1}]\n", "127.70.0.1", "transport out1 binds it"),
        # Written through a template: what the inventory means, not what it spells.
        ("base: 127.70.0\npostfix_transports: [{name: out3, bind_address: '{{ base }}.3'}]\n", "127.70.0.3", "transport out3 binds it"),
        ("postfix_transports: [{name: v6, bind_address: '2001:DB8:0::1'}]\n", "2001:db8::1", "transport v6 binds it"),
        ("postfix_inet_interfaces: [127.70.0.9]\n", "127.70.0.9", "listens on it (inet_interfaces)"),
        (
            "postfix_instances: [{name: postfix-b, inet_interfaces: [127.70.0.8], transports: [{name: b1, bind_address: 127.70.0.7}]}]\n",
            "127.70.0.7",
            "instance postfix-b transport b1 binds it",
        ),
    ],
)
def test_an_address_another_host_binds_is_refused_naming_it(inventory: Path, mx0_vars: str, address: str, how: str) -> None:
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars/mx0.example.test.yml").write_text(mx0_vars)
    before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    done = provision("onboard", "mx1.example.test", "-i", str(inventory), "-g", "mail", "-a", "127.70.0.2", "-a", address, "--dry-run")
    assert done.returncode == 1, done.stdout
    assert f"{address} belongs to host mx0.example.test: its {how}" in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == before


def test_onboarding_the_same_host_again_is_not_a_conflict_with_itself(inventory: Path) -> None:
    args = ["onboard", "mx1.example.test", "-i", str(inventory), "-g", "mail", "-a", "127.70.0.1"]
    write(plan_inventory_edit(inventory, "mx1.example.test", "mail", onboard_vars("mx1.example.test", ["127.70.0.1"], {})))
    done = provision(*args, "--dry-run")
    assert done.returncode == 0, done.stderr


def test_ssh_host_is_written_as_the_variable_that_wins(inventory: Path) -> None:
    from provision.connectors import settings_from_vars
    from provision.roles.compiler import Project

    # www is already in the inventory with host: set, which provision reads before ansible_host.
    (inventory / "hosts.yml").write_text(
        HOSTS.replace("        www.example.test:\n", "        www.example.test:\n          host: 127.0.0.9\n")
    )
    done = provision("onboard", "www.example.test", "-i", str(inventory), "-g", "mail", "--ssh-host", "127.0.0.77", "--ssh-user", "admin")
    assert "1/6 inventory" in done.stdout and "error: ssh:" in done.stderr  # past the inventory step: nothing answers there
    assert yaml.safe_load((inventory / "host_vars/www.example.test.yml").read_text()) == {"host": "127.0.0.77", "ansible_user": "admin"}
    project = Project.load(inventory)
    settings = settings_from_vars("www.example.test", project.variables("www.example.test", project.host_roles("www.example.test"))[0])
    assert (settings.host, settings.user) == ("127.0.0.77", "admin")


def test_ssh_host_that_another_inventory_overrides_is_refused(inventory: Path, tmp_path: Path) -> None:
    # A later inventory's host_vars win over the first inventory's, which onboarding edits.
    later = tmp_path / "later"
    (later / "host_vars").mkdir(parents=True)
    (later / "hosts.yml").write_text("all:\n  hosts:\n    mx1.example.test:\n")
    (later / "host_vars/mx1.example.test.yml").write_text("# pinned\nhost: 127.0.0.66\n")
    before = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    done = provision(
        "onboard", "mx1.example.test", "-i", str(inventory), "-i", str(later), "-g", "mail", "--ssh-host", "127.0.0.77", "--dry-run"
    )
    assert done.returncode == 1, done.stdout
    expected = f"error: host would not be '127.0.0.77': host is '127.0.0.66' in {later}/host_vars/mx1.example.test.yml:2:1, which wins"
    assert done.stderr.startswith(expected) and f"over {inventory}/host_vars/mx1.example.test.yml" in done.stderr, done.stderr
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == before


def test_a_transport_verified_before_is_found_in_the_log() -> None:
    from provision.agent.mail import sent_from

    log = (
        "Dec  2 20:02:46 mx1 postfix/qmgr[862]: 42B911B272F: from=<provision-verify+out1@mx1.example.test>, size=310, nrcpt=1\n"
        "Dec  2 20:02:46 mx1 postfix/out1/smtp[965]: 42B911B272F: to=<p@sink.test>, relay=127.83.0.25[127.83.0.25]:2525, "
        "delay=0.11, delays=0.07/0.04/0/0, dsn=2.0.0, status=sent (250 OK kept)\n"
        "Dec  2 20:02:47 mx1 postfix/qmgr[862]: 52B911B272F: from=<provision-verify+out2@mx1.example.test>, size=310, nrcpt=1\n"
        "Dec  2 20:02:48 mx1 postfix/out2/smtp[966]: 52B911B272F: to=<p@sink.test>, relay=none, delay=1, delays=1/0/0/0, "
        "dsn=4.4.1, status=deferred (connect to 127.83.0.25[127.83.0.25]:2525: Connection refused)\n"
    )
    found = sent_from(log, ["provision-verify+out1@mx1.example.test", "provision-verify+out2@mx1.example.test"])
    assert list(found) == ["provision-verify+out1@mx1.example.test"]
    assert found["provision-verify+out1@mx1.example.test"]["program"] == "postfix/out1/smtp"


@needs_ansible
def test_an_estate_with_vaulted_group_vars_onboards_with_its_vault_password(inventory: Path) -> None:
    """onboard and lab up -i read the inventory as apply does: vault options, ansible.cfg's password file."""
    password = inventory / ".vault-pass"
    password.write_text("s3cret\n")
    vars_file = inventory / "group_vars/mail.yml"
    vault_encrypt_file(password, vars_file)
    assert vars_file.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    args = ("onboard", "mx1.example.test", "-i", str(inventory), "-g", "mail", "-a", "127.70.0.1", "--dry-run")
    refused = provision(*args)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert str(vars_file) in refused.stderr and "vault" in refused.stderr
    done = provision(*args, "--vault-password-file", str(password))
    assert done.returncode == 0, done.stderr
    assert "dry run" in done.stdout
    # lab up reads it too: with the password, the next mistake (a suite typo) is what it says, before anything starts.
    lab = provision("lab", "up", "--name", "vaulttest", "-i", str(inventory), "--suite", "bookwrom", "--vault-password-file", str(password))
    assert lab.returncode != 0 and "bookwrom" in lab.stderr and "vault" not in lab.stderr, lab.stderr
