"""The OpenSSH transport against real sshd in lab containers: the user's
ssh_config honoured (an alias, a ProxyJump), provision's host-key rules
enforced at every hop, and shared connections (a second run opens a
channel, not a connection; ``provision ssh close`` ends them).

Connections are counted in each host's own sshd log (LogLevel DEBUG1):
"Accepted publickey" once per connection, "request exec" once per command.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from provision.lab.lab import Lab
from tests.support.lab import NAMESPACE, engine_ready

pytestmark = pytest.mark.lab

ALT_PORT = 2222
"""A second sshd on the second host's first extra address, reachable only through the ssh_config alias."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    engine_ready()
    lab = Lab("ossh", root=tmp_path_factory.mktemp("lab"), namespace=NAMESPACE, sshd_log_level="DEBUG1")
    lab.up(3, say=lambda text: None)
    alt = lab.host("ossh-2").extra_addresses[0]
    code, output = lab.exec("ossh-2", ["/usr/sbin/sshd", "-o", f"ListenAddress={alt}:{ALT_PORT}", "-o", "PidFile=/run/sshd-alt.pid"])
    assert code == 0, output
    yield lab
    lab.down()


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A runtime folder of the test's own (short: control sockets must fit in 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield folder
    provision(folder, "ssh", "close")
    shutil.rmtree(folder, ignore_errors=True)


def provision(runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=300, env=env)


def log_count(lab: Lab, host: str, text: str) -> int:
    logs = subprocess.run(["docker", "logs", lab.host(host).container], capture_output=True, text=True, check=True)
    return (logs.stdout + logs.stderr).count(text)


def connections(lab: Lab, host: str) -> int:
    return log_count(lab, host, "Accepted publickey")


def motd(lab: Lab, host: str) -> str:
    return lab.exec(host, ["cat", "/etc/motd"])[1]


def inventory(folder: Path, hosts: Mapping[str, Mapping[str, object]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (folder / "site.yml").write_text("- hosts: all\n  roles: [motd]\n")
    return folder


def known_hosts(lab: Lab, path: Path, *entries: tuple[str, str]) -> Path:
    """A known_hosts file with the keys of (lab host, address as ssh names it)."""
    lines = [f"{name} {key}" for host, name in entries for key in lab.host_keys(lab.host(host))]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def host_result(done: subprocess.CompletedProcess[str], host: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(done.stdout)["hosts"][host]
    return result


def test_an_alias_with_hostname_port_and_key_only_in_ssh_config(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    alt = lab.host("ossh-2").extra_addresses[0]
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web-alias\n  HostName {alt}\n  Port {ALT_PORT}\n  User root\n  IdentityFile {lab.key_file}\n")
    known = known_hosts(lab, tmp_path / "known_hosts", ("ossh-2", f"[{alt}]:{ALT_PORT}"))
    # Nothing about the address, port, user or key in the inventory: only the alias.
    hosts = {"web-alias": {"ssh_config": str(config), "known_hosts": str(known), "motd_message": "reached by alias"}}
    done = provision(runtime, "apply", "-i", str(inventory(tmp_path / "inv", hosts)), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    changed = host_result(done, "web-alias")["changed"]
    assert isinstance(changed, list) and "/etc/motd" in changed
    assert "reached by alias" in motd(lab, "ossh-2")


def test_a_proxyjump_in_ssh_config_goes_through_the_jump_host(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    bastion, target = lab.host("ossh-1"), lab.host("ossh-3")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {bastion.address}\n  User root\n  IdentityFile {lab.key_file}\n"
        f"Host behind\n  HostName {target.address}\n  User root\n  IdentityFile {lab.key_file}\n  ProxyJump bastion\n"
    )
    known = known_hosts(lab, tmp_path / "known_hosts", ("ossh-1", bastion.address), ("ossh-3", target.address))
    forwarded = log_count(lab, "ossh-1", f"target {target.address} port 22")
    hosts = {"behind": {"ssh_config": str(config), "known_hosts": str(known), "motd_message": "reached through bastion"}}
    done = provision(runtime, "apply", "-i", str(inventory(tmp_path / "inv", hosts)), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reached through bastion" in motd(lab, "ossh-3")
    # The bastion's sshd forwarded the connection to the target.
    assert log_count(lab, "ossh-1", f"target {target.address} port 22") == forwarded + 1


def test_a_jump_hosts_key_is_checked_by_the_same_rules(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    bastion, target = lab.host("ossh-1"), lab.host("ossh-3")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {bastion.address}\n  User root\n  IdentityFile {lab.key_file}\n"
        f"Host behind\n  HostName {target.address}\n  User root\n  IdentityFile {lab.key_file}\n  ProxyJump bastion\n"
    )
    known = known_hosts(lab, tmp_path / "known_hosts", ("ossh-3", target.address))  # the target's key only
    before = motd(lab, "ossh-3")
    hosts = {"behind": {"ssh_config": str(config), "known_hosts": str(known), "motd_message": "must not arrive"}}
    done = provision(runtime, "apply", "-i", str(inventory(tmp_path / "inv", hosts)), "--json")
    assert done.returncode == 1
    result = host_result(done, "behind")
    assert result["status"] == "unreachable"
    assert "through jump host bastion: host key of bastion is not in" in str(result["errors"])
    assert motd(lab, "ossh-3") == before


def test_accept_new_through_a_jump_host_records_both_keys_in_the_chosen_file(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    bastion, target = lab.host("ossh-1"), lab.host("ossh-3")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {bastion.address}\n  User root\n  IdentityFile {lab.key_file}\n"
        f"Host behind\n  HostName {target.address}\n  User root\n  IdentityFile {lab.key_file}\n  ProxyJump bastion\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text("")
    hosts = {"behind": {"ssh_config": str(config), "known_hosts": str(known), "motd_message": "first use through bastion"}}
    done = provision(runtime, "apply", "-i", str(inventory(tmp_path / "inv", hosts)), "--json", "--accept-new-host-keys")
    assert done.returncode == 0, done.stdout + done.stderr
    for address in (bastion.address, target.address):
        found = subprocess.run(["ssh-keygen", "-F", address, "-f", str(known)], capture_output=True, text=True, check=False)
        assert found.returncode == 0, address


def lab_host(lab: Lab, name: str, known: Path, **extra: object) -> dict[str, dict[str, object]]:
    host = lab.host(name)
    return {name: {"host": host.address, "user": "root", "ssh_key": str(lab.key_file), "known_hosts": str(known), **extra}}


def test_an_unknown_host_key_is_refused_and_not_recorded(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    before = motd(lab, "ossh-1")
    done = provision(runtime, "apply", "-i", str(inventory(tmp_path / "inv", lab_host(lab, "ossh-1", known, motd_message="no"))), "--json")
    assert done.returncode == 1
    result = host_result(done, "ossh-1")
    assert result["status"] == "unreachable"
    assert "is not in" in str(result["errors"]) and "--accept-new-host-keys" in str(result["errors"])
    assert known.read_text() == "" and motd(lab, "ossh-1") == before


def test_a_changed_host_key_is_always_refused(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    host = lab.host("ossh-1")
    # Another lab host's keys recorded under this host's address: as if its keys had changed.
    known = known_hosts(lab, tmp_path / "known_hosts", ("ossh-2", host.address))
    recorded = known.read_text()
    folder = inventory(tmp_path / "inv", lab_host(lab, "ossh-1", known, motd_message="no"))
    for flags in ([], ["--accept-new-host-keys"]):
        done = provision(runtime, "apply", "-i", str(folder), "--json", *flags)
        assert done.returncode == 1, flags
        result = host_result(done, "ossh-1")
        assert result["status"] == "unreachable" and "has CHANGED" in str(result["errors"]), flags
    assert known.read_text() == recorded


def test_accept_new_records_the_key_then_it_is_checked(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    host = lab.host("ossh-3")
    known = tmp_path / "known_hosts"
    known.write_text("")
    folder = inventory(tmp_path / "inv", lab_host(lab, "ossh-3", known, motd_message="first use"))
    done = provision(runtime, "apply", "-i", str(folder), "--json", "--accept-new-host-keys")
    assert done.returncode == 0, done.stdout + done.stderr
    found = subprocess.run(["ssh-keygen", "-F", host.address, "-f", str(known)], capture_output=True, text=True, check=False)
    assert found.returncode == 0 and "ssh-ed25519" in found.stdout
    provision(runtime, "ssh", "close")
    again = provision(runtime, "apply", "-i", str(folder), "--json")  # a new connection, without the flag
    assert again.returncode == 0 and host_result(again, "ossh-3")["status"] == "ok"


def test_a_second_run_opens_a_channel_not_a_connection_until_closed(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    # A key file whose name holds a '%': ssh must not read it as a token.
    key = tmp_path / "id%key"
    shutil.copy(lab.key_file, key)
    known = known_hosts(lab, tmp_path / "known_hosts", ("ossh-2", lab.host("ossh-2").address))
    folder = inventory(tmp_path / "inv", lab_host(lab, "ossh-2", known, ssh_key=str(key), motd_message="shared"))
    provision(runtime, "ssh", "close")
    opened, commands = connections(lab, "ossh-2"), log_count(lab, "ossh-2", "request exec")

    first = provision(runtime, "apply", "-i", str(folder), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert connections(lab, "ossh-2") == opened + 1
    second = provision(runtime, "check", "-i", str(folder), "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert host_result(second, "ossh-2")["round_trips"] == 1
    # The check ran its command over the connection the apply left open.
    assert connections(lab, "ossh-2") == opened + 1
    assert log_count(lab, "ossh-2", "request exec") == commands + int(str(host_result(first, "ossh-2")["round_trips"])) + 1

    control = runtime / "provision" / "ssh"
    assert stat.S_IMODE(control.stat().st_mode) == 0o700 and stat.S_IMODE(control.parent.stat().st_mode) == 0o700
    assert any(stat.S_ISSOCK(entry.lstat().st_mode) for entry in control.iterdir())

    closed = provision(runtime, "ssh", "close", "-i", str(folder))
    assert closed.returncode == 0 and closed.stdout == "ossh-2: closed\n"
    assert not any(stat.S_ISSOCK(entry.lstat().st_mode) for entry in control.iterdir())
    third = provision(runtime, "check", "-i", str(folder), "--json")
    assert third.returncode == 0
    assert connections(lab, "ossh-2") == opened + 2
    assert provision(runtime, "ssh", "close").stdout == "closed 1 shared connection\n"
