"""Ansible Vault against files the real ``ansible-vault`` writes.

Every encrypted file and ``!vault`` value here is made by ``ansible-vault``
with a temporary password file; ``ansible-inventory`` given the same
passwords is the reference. Decrypted values are secrets: masked by
``provision inventory`` unless --show-secrets, and never in a diff, --json,
an error message or any other output (one test runs every command and greps
both of its output streams).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from provision.engine.diffs import MASK
from provision.errors import Location
from provision.inventory.options import LoadOptions
from provision.inventory.vault import Vault, VaultError, VaultSecret, VaultText, build_vault
from provision.roles.compiler import Project
from tests.fixtures import svc_project
from tests.support.ansible_ref import ansible_inventory, needs_ansible, provision, vault_encrypt_file, vault_encrypt_string
from tests.support.files import write

pytestmark = needs_ansible

DEFAULT_PASSWORD = "correct horse battery"
PROD_PASSWORD = "pr0d-Pa$$w0rd"
INLINE_SECRET = "Inline-Db-Secret-4711"
PROD_SECRET = "Prod-Api-Token-0815"
WHOLE_SECRET = "Whole-File-Secret-9"


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Ansible estate with every kind of vault use, made by ansible-vault."""
    base = tmp_path_factory.mktemp("vault")
    write(base / "pw-default", DEFAULT_PASSWORD + "\n")
    write(base / "pw-prod", PROD_PASSWORD + "\n")
    inv = base / "inv"
    write(
        inv / "hosts.yml",
        """
        all:
          children:
            web:
              hosts:
                web1.example.net:
                web2.example.net:
            db:
              hosts:
                db1.example.net:
        """,
    )
    write(inv / "group_vars/all.yml", "app: demo\n" + vault_encrypt_string(base / "pw-default", INLINE_SECRET, "db_password"))
    write(inv / "group_vars/web.yml", vault_encrypt_string(base / "pw-prod", PROD_SECRET, "api_token", vault_id="prod"))
    whole = write(inv / "host_vars/db1.example.net.yml", f"replica_key: {WHOLE_SECRET}\nreplica_port: 5432\n")
    vault_encrypt_file(base / "pw-default", whole)
    hidden = write(base / "hidden.ini", "[hidden]\nh1.example.net ansible_host=127.82.3.1\nh2.example.net\n")
    vault_encrypt_file(base / "pw-default", hidden)
    return base


def both_passwords(estate: Path) -> list[str]:
    return ["--vault-id", f"prod@{estate / 'pw-prod'}", "--vault-password-file", str(estate / "pw-default")]


# --- the cipher ---------------------------------------------------------------


def test_decrypts_formats_1_1_and_1_2(estate: Path) -> None:
    vault = Vault([VaultSecret("default", DEFAULT_PASSWORD.encode(), "test"), VaultSecret("prod", PROD_PASSWORD.encode(), "test")])
    project = Project.load(estate / "inv", options=LoadOptions(vault=vault))
    web = project.variables("web1.example.net", project.host_roles("web1.example.net"))[0]
    assert (web["db_password"], web["api_token"]) == (INLINE_SECRET, PROD_SECRET)
    assert isinstance(web["db_password"], VaultText) and isinstance(web["api_token"], VaultText)
    assert "$ANSIBLE_VAULT;1.2;AES256;prod" in (estate / "inv/group_vars/web.yml").read_text()
    db = project.variables("db1.example.net", project.host_roles("db1.example.net"))[0]
    assert db["replica_key"] == WHOLE_SECRET and isinstance(db["replica_key"], VaultText)
    assert db["replica_port"] == 5432


def test_wrong_password_and_damaged_payload_are_errors(estate: Path) -> None:
    text = (estate / "hidden.ini").read_text()
    wrong = Vault([VaultSecret("default", b"not it", "pw-wrong")])
    with pytest.raises(VaultError, match=r"cannot decrypt .* tried default \(pw-wrong\)"):
        wrong.decrypt(text, Location("hidden.ini"))
    lines = text.splitlines()
    lines[2] = lines[2][:-4] + ("0000" if not lines[2].endswith("0000") else "1111")  # flip bytes of the ciphertext: the HMAC notices
    right = Vault([VaultSecret("default", DEFAULT_PASSWORD.encode(), "pw")])
    with pytest.raises(VaultError):
        right.decrypt("\n".join(lines), Location("hidden.ini"))
    assert right.decrypt(text, Location("hidden.ini")).startswith(b"[hidden]")


# --- provision inventory against ansible-inventory ---------------------------------


def test_list_matches_ansible_with_vault(estate: Path) -> None:
    sources = [estate / "inv", estate / "hidden.ini"]
    args = [a for s in sources for a in ("-i", str(s))]
    expected = ansible_inventory(sources, "--list", *both_passwords(estate))
    masked = provision("inventory", *args, "--list", *both_passwords(estate))
    assert masked.returncode == 0, masked.stderr
    ours = json.loads(masked.stdout)
    # Inline values are printed as their ciphertext, as Ansible does; values of a
    # whole encrypted file (which Ansible prints in clear) are masked.
    expected["_meta"]["hostvars"]["db1.example.net"]["replica_key"] = MASK
    expected["_meta"]["hostvars"]["h1.example.net"]["ansible_host"] = MASK
    assert ours == expected
    assert WHOLE_SECRET not in masked.stdout and INLINE_SECRET not in masked.stdout

    shown = json.loads(provision("inventory", *args, "--list", "--show-secrets", *both_passwords(estate)).stdout)
    web1 = shown["_meta"]["hostvars"]["web1.example.net"]
    assert (web1["db_password"], web1["api_token"]) == (INLINE_SECRET, PROD_SECRET)
    assert shown["_meta"]["hostvars"]["db1.example.net"]["replica_key"] == WHOLE_SECRET
    assert shown["hidden"] == expected["hidden"] == {"hosts": ["h1.example.net", "h2.example.net"]}


def test_host_matches_ansible_with_vault(estate: Path) -> None:
    expected = ansible_inventory(estate / "inv", "--host", "web2.example.net", *both_passwords(estate))
    done = provision("inventory", "-i", str(estate / "inv"), "--host", "web2.example.net", *both_passwords(estate))
    assert json.loads(done.stdout) == expected


# --- no password, wrong password: an error naming the file and line, never data ---------


def test_encrypted_inventory_without_password_is_an_error_not_hosts(estate: Path) -> None:
    done = provision("inventory", "-i", str(estate / "hidden.ini"), "--list")
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{estate / 'hidden.ini'}: this is encrypted with Ansible Vault" in done.stderr
    assert "--vault-password-file" in done.stderr and "Traceback" not in done.stderr


def test_encrypted_vars_file_without_password_names_the_file(estate: Path) -> None:
    done = provision("inventory", "-i", str(estate / "inv"), "--host", "web1.example.net")
    assert done.returncode == 1
    assert f"{estate / 'inv/host_vars/db1.example.net.yml'}: this is encrypted with Ansible Vault" in done.stderr


def test_inline_value_without_password_names_file_and_line(estate: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    write(project / "hosts.yml", "all:\n  hosts:\n    web1.example.net:\n")
    write(project / "group_vars/all.yml", (estate / "inv/group_vars/all.yml").read_text())
    write(project / "site.yml", "- hosts: all\n  roles: [motd]\n")
    # Inline values stay encrypted until needed: listing needs no password, as in Ansible.
    listed = provision("inventory", "-i", str(project), "--host", "web1.example.net")
    assert json.loads(listed.stdout)["db_password"]["__ansible_vault"].startswith("$ANSIBLE_VAULT;1.1;AES256")
    done = provision("render", "-i", str(project), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert f"{project / 'group_vars/all.yml'}:2:14: this is encrypted with Ansible Vault (vault id 'default')" in done.stderr
    assert not (tmp_path / "out").exists()
    wrong = write(tmp_path / "wrong", "nope\n")
    done = provision("render", "-i", str(project), "--out", str(tmp_path / "out"), "--vault-password-file", str(wrong))
    assert done.returncode == 1
    assert f"{project / 'group_vars/all.yml'}:2:14: cannot decrypt this Ansible Vault payload" in done.stderr


# --- where passwords come from ---------------------------------------------------


def prompt_never(text: str) -> str:
    raise AssertionError(f"unexpected prompt {text!r}")


def test_password_sources(estate: Path, tmp_path: Path) -> None:
    script = write(tmp_path / "pass.sh", f"#!/bin/sh\necho '{DEFAULT_PASSWORD}'\n", 0o755)
    client = write(
        tmp_path / "keyring-client.py",
        f"""
        #!/usr/bin/env python3
        import sys
        assert sys.argv[1:] == ["--vault-id", "prod"], sys.argv
        print({PROD_PASSWORD!r})
        """,
        0o755,
    )
    vault = build_vault([f"prod@{client}"], [str(script)], False, prompt_never)
    assert [(s.label, s.password) for s in vault.secrets] == [("prod", PROD_PASSWORD.encode()), ("default", DEFAULT_PASSWORD.encode())]
    asked = build_vault([], [], True, lambda text: DEFAULT_PASSWORD if text == "Vault password: " else "?")
    assert asked.secrets[0].password == DEFAULT_PASSWORD.encode()
    labelled = build_vault(["prod@prompt"], [], False, lambda text: PROD_PASSWORD if text == "Vault password (prod): " else "?")
    assert labelled.secrets[0].label == "prod"
    failing = write(tmp_path / "fail.sh", "#!/bin/sh\necho 'no keyring' >&2\nexit 3\n", 0o755)
    with pytest.raises(VaultError, match="exited with status 3: no keyring"):
        build_vault([], [str(failing)], False, prompt_never)
    with pytest.raises(VaultError, match="does not exist"):
        build_vault([f"prod@{tmp_path / 'missing'}"], [], False, prompt_never)
    empty = write(tmp_path / "empty", "\n")
    with pytest.raises(VaultError, match="empty password"):
        build_vault([], [str(empty)], False, prompt_never)


def test_ask_vault_pass_and_environment(estate: Path) -> None:
    args = ["inventory", "-i", str(estate / "inv"), "--host", "db1.example.net", "--show-secrets"]
    asked = provision(*args, "--ask-vault-pass", stdin=DEFAULT_PASSWORD + "\n")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["replica_key"] == WHOLE_SECRET
    assert "Vault password: " in asked.stderr
    from_env = provision(*args, env={"ANSIBLE_VAULT_PASSWORD_FILE": str(estate / "pw-default")})
    assert json.loads(from_env.stdout)["replica_key"] == WHOLE_SECRET
    ids = f"prod@{estate / 'pw-prod'},default@{estate / 'pw-default'}"
    web_args = ["inventory", "-i", str(estate / "inv"), "--host", "web1.example.net", "--show-secrets"]
    web = provision(*web_args, env={"ANSIBLE_VAULT_IDENTITY_LIST": ids})
    assert json.loads(web.stdout)["api_token"] == PROD_SECRET


def test_vault_id_match_only_tries_the_matching_label(estate: Path) -> None:
    # The prod payload with only the default password under the wrong label: Ansible tries it too, unless vault_id_match.
    args = ["inventory", "-i", str(estate / "inv"), "--host", "web1.example.net", "--show-secrets"]
    relabelled = ["--vault-id", f"prod@{estate / 'pw-default'}", "--vault-id", f"other@{estate / 'pw-prod'}"]
    relabelled += ["--vault-password-file", str(estate / "pw-default")]  # for the whole encrypted host_vars file
    assert json.loads(provision(*args, *relabelled).stdout)["api_token"] == PROD_SECRET
    strict = provision(*args, *relabelled, env={"ANSIBLE_VAULT_ID_MATCH": "true"})
    assert strict.returncode == 1 and "tried prod" in strict.stderr and "other" not in strict.stderr.split("tried")[1]


# --- -e @vaulted file, and files a role copies -----------------------------------------


def test_extra_vars_file_may_be_encrypted(estate: Path, tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.yml", "db_password: from-extra-file\n")
    vault_encrypt_file(estate / "pw-default", extra)
    done = provision(
        "inventory", "-i", str(estate / "inv"), "--host", "web1.example.net", *both_passwords(estate), "-e", f"@{extra}", "--show-secrets"
    )
    assert json.loads(done.stdout)["db_password"] == "from-extra-file"


def test_role_source_file_is_decrypted_and_secret(estate: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    write(project / "hosts.yml", "all:\n  hosts:\n    h1:\n")
    write(project / "site.yml", "- hosts: all\n  roles: [keys]\n")
    role = "description: copies a key\nfiles:\n  - dest: /etc/keys/api.key\n    src: api.key\n    mode: '0600'\n"
    write(project / "roles/keys/role.yml", role)
    key = write(project / "roles/keys/files/api.key", "Role-File-Secret-31337\n")
    vault_encrypt_file(estate / "pw-default", key)
    vault = Vault([VaultSecret("default", DEFAULT_PASSWORD.encode(), "pw")])
    entry = Project.load(project, options=LoadOptions(vault=vault)).compile("h1").desired.files["/etc/keys/api.key"]
    assert entry.content == b"Role-File-Secret-31337\n"
    assert entry.secret
    with pytest.raises(VaultError, match=r"api.key: this is encrypted with Ansible Vault"):
        Project.load(project).compile("h1")


# --- secrets never leave: every output channel of every command --------------------------

BANNER = "Vault-Banner\\Plain-7731"  # a backslash: repr() would escape it in a message
PORT = "Vault-Port\\Plain-0042"  # escaped by repr() in the error message


def _vaulted_project(estate: Path, base: Path, bad_port: bool) -> Path:
    project = base / ("bad" if bad_port else "good")
    files: dict[str, str] = svc_project(str(base / "root-a"), str(base / "root-b"), str(base / "log"))
    for name, text in files.items():
        write(project / name, text)
    values = vault_encrypt_string(estate / "pw-default", BANNER, "svc_banner")
    if bad_port:
        values += vault_encrypt_string(estate / "pw-default", PORT, "svc_port")
    write(project / "group_vars/all.yml", values)
    return project


def _outputs(*runs: Any) -> str:
    return "".join(run.stdout + run.stderr for run in runs)


def test_vault_values_never_reach_any_output(estate: Path, tmp_path: Path) -> None:
    project = _vaulted_project(estate, tmp_path, bad_port=False)
    pw = ["--vault-password-file", str(estate / "pw-default")]
    inv = ["-i", str(project)]
    first = provision("apply", *inv, *pw, "--json", "--diff")
    assert first.returncode == 0, first.stderr
    assert BANNER in (tmp_path / "root-a/etc/svc/plain.txt").read_text()  # the host gets the value...
    (tmp_path / "root-a/etc/svc/plain.txt").write_text("drifted\n")
    (tmp_path / "root-b/etc/svc/svc.conf").write_text("port=1\n")
    runs = [
        first,
        provision("check", *inv, *pw, "--diff"),
        provision("check", *inv, *pw, "--diff", "--json"),
        provision("check", *inv, *pw, "--quiet"),
        provision("render", *inv, *pw, "--out", str(tmp_path / "rendered")),
        provision("inventory", *inv, *pw, "--list"),
        provision("inventory", *inv, *pw, "--host", "alpha"),
        provision("apply", *inv, *pw, "--diff"),
    ]
    drift = json.loads(runs[2].stdout)["hosts"]
    # ...and a file holding a vaulted value becomes secret: its diff shows hashes only.
    assert drift["alpha"]["files"][0]["diff"].startswith("(secret content changed: sha256")
    bad = _vaulted_project(estate, tmp_path, bad_port=True)
    failed = provision("check", "-i", str(bad), *pw)
    assert failed.returncode == 1 and "svc_port" in failed.stderr and MASK in failed.stderr
    runs.append(failed)
    leaked = _outputs(*runs)
    for secret in (BANNER, BANNER.replace("\\", "\\\\"), PORT, PORT.replace("\\", "\\\\")):
        assert secret not in leaked
    assert (tmp_path / "rendered/alpha/etc/svc/plain.txt").read_text() == f"plain {BANNER}\n"


def test_ansible_password_variables_are_masked_exactly(tmp_path: Path) -> None:
    inv = write(
        tmp_path / "hosts.yml",
        """
        all:
          hosts:
            h1:
              ansible_ssh_pass: your_password
              ansible_become_password: b3come
              ansible_password: pw-1234
              ansible_become_pass: pw-5678
              ansible_ssh_private_key_file: /home/me/.ssh/id_ed25519
              secret_feature: false
              api_token: null
        """,
    )
    masked = json.loads(provision("inventory", "-i", str(inv), "--host", "h1").stdout)
    assert masked == {
        "ansible_ssh_pass": MASK,
        "ansible_become_password": MASK,
        "ansible_password": MASK,
        "ansible_become_pass": MASK,
        "ansible_ssh_private_key_file": "/home/me/.ssh/id_ed25519",
        "secret_feature": False,
        "api_token": None,
    }
    shown = json.loads(provision("inventory", "-i", str(inv), "--host", "h1", "--show-secrets").stdout)
    assert shown == ansible_inventory(inv, "--host", "h1")
    assert os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") is None
