"""The OpenSSH connector's settings, read back by the real ``ssh -G`` (no network).

The lab tests (tests/lab/test_openssh.py) prove the same against real sshd;
these show what ssh itself makes of provision's config beside a user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.connectors import connect, settings_from_vars
from provision.connectors.openssh import OpenSshConnector, _classified, control_folder, ssh_arguments
from provision.connectors.ssh import SshConnector
from provision.errors import ProvisionError

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's client")


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # A short path of its own (control sockets must fit in 107 bytes; a longer one falls back to /tmp/provision-UID).
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder)


def resolved(host: str, variables: dict[str, object], options: dict[str, str] | None = None) -> dict[str, list[str]]:
    """What ssh would use to reach ``host``: ``ssh -G`` over provision's arguments."""
    settings = settings_from_vars(host, variables, options)
    argv = [*ssh_arguments(settings, control_folder()), "-G", "--", settings.host or host]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    values: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, []).append(value)
    return values


def test_the_control_folder_is_private(runtime: Path) -> None:
    folder = control_folder()
    assert folder == runtime / "provision" / "ssh"
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700
    os.chmod(folder, 0o755)
    assert control_folder().stat().st_mode & 0o777 == 0o700  # loosened by someone: tightened again


def test_a_control_folder_owned_by_someone_else_is_refused(runtime: Path) -> None:
    folder = runtime / "provision" / "ssh"
    folder.mkdir(parents=True, mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(ProvisionError, match="belongs to uid 65534"):
        control_folder()


def test_a_control_folder_that_is_a_symlink_is_refused(runtime: Path, tmp_path: Path) -> None:
    (runtime / "provision").mkdir(mode=0o700)
    (runtime / "provision" / "ssh").symlink_to(tmp_path)
    with pytest.raises(ProvisionError, match="not a folder"):
        control_folder()


def test_provision_rules_win_over_the_users_config(runtime: Path, tmp_path: Path) -> None:
    user = tmp_path / "ssh_config"
    user.write_text(
        "Host web1\n  HostName 127.88.0.9\n  Port 2200\n  User deploy\n  IdentityFile /keys/web1\n"
        "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode no\n  ControlMaster no\n"
    )
    known = tmp_path / "known hosts"
    values = resolved("web1", {"ssh_config": str(user), "known_hosts": str(known)})
    # The user's file decides where and as whom...
    assert values["hostname"] == ["127.88.0.9"] and values["port"] == ["2200"] and values["user"] == ["deploy"]
    assert "/keys/web1" in values["identityfile"]
    # ...provision decides how keys are checked and that connections are shared.
    assert values["stricthostkeychecking"] == ["true"]
    assert values["userknownhostsfile"] == [str(known)]
    assert values["batchmode"] == ["yes"] and values["updatehostkeys"] == ["false"]
    assert values["controlmaster"] == ["auto"] and values["controlpersist"] == ["60"]
    assert values["controlpath"][0].startswith(str(runtime / "provision" / "ssh") + "/")


def test_accept_new_only_when_asked_and_persistence_settable(runtime: Path) -> None:
    values = resolved("h", {"host": "127.88.0.1", "ssh_control_persist": 5}, {"accept_new_host_keys": "yes"})
    assert values["stricthostkeychecking"] == ["accept-new"] and values["controlpersist"] == ["5"]
    shared = resolved("h", {"host": "127.88.0.1", "ssh_control_persist": 0})
    assert shared["controlmaster"] == ["false"] and "controlpath" not in shared


def test_the_users_key_exchange_choice_wins_over_provisions_default(runtime: Path, tmp_path: Path) -> None:
    assert resolved("h", {"host": "127.88.0.1"})["kexalgorithms"][0].startswith("curve25519-sha256,")
    user = tmp_path / "ssh_config"
    user.write_text("KexAlgorithms sntrup761x25519-sha512@openssh.com\n")
    assert resolved("h", {"host": "127.88.0.1", "ssh_config": str(user)})["kexalgorithms"] == ["sntrup761x25519-sha512@openssh.com"]


def test_inventory_settings_are_passed_only_when_set(runtime: Path) -> None:
    settings = settings_from_vars("web1", {})
    argv = ssh_arguments(settings, control_folder())
    assert "-p" not in argv and "-l" not in argv and "-i" not in argv
    assert settings.port is None and settings.host == "web1"
    values = resolved("web1", {"ansible_host": "127.88.0.3", "ansible_port": 2201, "ansible_user": "ops"})
    assert (values["hostname"], values["port"], values["user"]) == (["127.88.0.3"], ["2201"], ["ops"])


@pytest.mark.parametrize("path", ['/tmp/a"b', "/tmp/a\nHost *\n  StrictHostKeyChecking no"])
def test_a_path_cannot_inject_a_directive(runtime: Path, path: str) -> None:
    with pytest.raises(ProvisionError, match="quote or a line break"):
        resolved("h", {"host": "127.88.0.1", "known_hosts": path})


def test_percent_signs_in_paths_are_not_tokens(runtime: Path, tmp_path: Path) -> None:
    known, key = tmp_path / "100%h", tmp_path / "key%r"
    key.write_text("not a key, but there\n")
    values = resolved("h", {"host": "127.88.0.1", "known_hosts": str(known), "ssh_key": str(key)})
    assert values["userknownhostsfile"] == [str(known)]
    # ssh -G shows IdentityFile before its %-expansion (the lab test logs in with such a key).
    assert str(key).replace("%", "%%") in values["identityfile"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"ssh_control_persist": "soon"}, "ssh_control_persist must be a number"),
        ({"ssh_control_persist": True}, "ssh_control_persist must be a number"),
        ({"port": 70000}, "port must be between 1 and 65535"),
        ({"port": "22; rm"}, "port must be a number"),
        ({"connection": "telnet"}, "unknown connection"),
    ],
)
def test_bad_settings_are_the_users_mistake(variables: dict[str, object], message: str) -> None:
    with pytest.raises(ProvisionError, match=message):
        settings_from_vars("h", variables)


def test_openssh_by_default_paramiko_when_asked(runtime: Path) -> None:
    assert isinstance(connect(settings_from_vars("h", {"host": "127.88.0.1"})), OpenSshConnector)
    paramiko_settings = settings_from_vars("h", {"host": "127.88.0.1", "port": 1, "connection": "paramiko"})
    with pytest.raises(Exception) as caught:  # nothing listens on 127.88.0.1:1: Paramiko connects eagerly
        SshConnector(paramiko_settings, connect_timeout=2)
    assert "cannot connect" in str(caught.value)


def test_an_address_that_looks_like_an_option_is_refused(runtime: Path) -> None:
    with pytest.raises(ProvisionError, match="starts with '-'"):
        connect(settings_from_vars("h", {"host": "-oProxyCommand=touch /tmp/x"}))


def test_the_hosts_banner_is_kept_off_standard_error(runtime: Path) -> None:
    # ssh prints a Banner onto stderr at LogLevel INFO and above; stderr is the remote command's
    # (tests/lab/test_example_over_ssh.py runs a command on a host showing one). A user's LogLevel cannot undo it.
    assert resolved("h", {"host": "127.88.0.1"})["loglevel"] == ["ERROR"]


DENIED = "root@127.88.0.1: Permission denied (publickey,password).\nAuthorised access only.\n"
"""ssh's -E log, then standard error: the host's Banner comes last."""


def denial(settings_values: dict[str, object]) -> str:
    connector = OpenSshConnector(settings_from_vars("h", {"host": "127.88.0.1", **settings_values}))
    return str(_classified(DENIED, "127.88.0.1", connector.settings, connector._tried))


def test_a_refused_key_is_named_with_sshds_reason_not_the_banner(runtime: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    said = denial({"ssh_key": str(key)})
    assert said == f"authentication to 127.88.0.1 as root failed with the key {key}: Permission denied (publickey,password)"


def test_an_encrypted_key_is_said_to_be_encrypted(runtime: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    assert denial({"ssh_key": str(key)}).endswith(
        f"with the key {key}: Permission denied (publickey,password); "
        f"the key {key} is encrypted: load it into ssh-agent, or give a key without a passphrase"
    )


def test_without_ssh_key_the_keys_ssh_config_gives_are_named(runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, absent = tmp_path / "ops_key", tmp_path / "never_made"
    key.write_text("a key file\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"IdentityFile {key}\nIdentityFile {absent}\n")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    said = denial({"ssh_config": str(config)})
    assert said.startswith(f"authentication to 127.88.0.1 as root failed with {key} (no ssh_key set: the keys ssh_config gives): ")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    assert f"failed with {key} and the SSH agent's keys (no ssh_key set" in denial({"ssh_config": str(config)})
