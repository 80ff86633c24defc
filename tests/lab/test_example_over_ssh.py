"""The bundled example applied over real SSH to three real Debian hosts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import testinfra  # type: ignore[import-untyped]  # pytest-testinfra ships no py.typed and there are no stubs

from provision.lab.lab import Lab
from tests.support.lab import inventory_args

pytestmark = pytest.mark.lab


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=900)


def converge(lab: Lab, *extra: str) -> dict[str, dict[str, object]]:
    done = provision("apply", *inventory_args(lab), "--json", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    hosts: dict[str, dict[str, object]] = json.loads(done.stdout)["hosts"]
    return hosts


def contact_override(path: Path, contact: str) -> Path:
    """An extra inventory whose host vars outrank the example's group_vars."""
    hosts = "".join(f"    example-{i}: {{motd_contact: {contact}}}\n" for i in (1, 2, 3))
    path.write_text(f"all:\n  hosts:\n{hosts}")
    return path


def host(lab: Lab, name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"docker://{lab.host(name).container}")


def test_apply_reapply_check_and_repair(example_lab: Lab) -> None:
    converge(example_lab)
    again = converge(example_lab)
    assert {name: (h["status"], h["handlers"], h["round_trips"]) for name, h in again.items()} == {
        name: ("ok", [], 1) for name in ("example-1", "example-2", "example-3")
    }

    example_lab.exec("example-2", ["sh", "-c", "echo 'PasswordAuthentication yes' >> /etc/ssh/sshd_config.d/provision.conf"])
    drift = provision("check", *inventory_args(example_lab), "--diff")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "example-2: would change /etc/ssh/sshd_config.d/provision.conf (content)" in drift.stdout
    assert "+PasswordAuthentication" not in drift.stdout and "-PasswordAuthentication yes" in drift.stdout
    assert "example-1: would change" not in drift.stdout and "example-3: would change" not in drift.stdout

    repaired = converge(example_lab)
    assert repaired["example-2"]["status"] == "changed" and repaired["example-2"]["handlers"] == ["reload sshd"]
    assert repaired["example-1"]["status"] == "ok"
    assert provision("check", *inventory_args(example_lab)).returncode == 0


def test_files_modes_owners_and_services_with_testinfra(example_lab: Lab) -> None:
    converge(example_lab)
    mail, web = host(example_lab, "example-1"), host(example_lab, "example-3")
    motd = mail.file("/etc/motd")
    assert motd.user == "root" and motd.group == "root" and motd.mode == 0o644
    assert "Outbound mail relay" in motd.content_string and "ops@example.net" in motd.content_string
    assert "Web server for www.example.net." in web.file("/etc/motd").content_string
    drop_in = mail.file("/etc/ssh/sshd_config.d/provision.conf")
    assert drop_in.mode == 0o644 and "MaxAuthTries 4" in drop_in.content_string
    assert mail.file("/etc/ssh/provision-banner").exists and not web.file("/etc/ssh/provision-banner").exists
    assert mail.process.filter(comm="sshd")
    assert mail.run("sshd -T -C user=root,host=x,addr=127.0.0.1 | grep -i '^maxauthtries'").stdout.strip() == "maxauthtries 4"
    assert mail.socket(f"tcp://{example_lab.host('example-1').address}:22").is_listening


def test_stopped_host_is_unreachable_and_the_others_converge(example_lab: Lab, tmp_path: Path) -> None:
    converge(example_lab)
    override = contact_override(tmp_path / "override.yml", "noc@example.net")
    example_lab.stop("example-3")
    try:
        done = subprocess.run(
            ["provision", "apply", *inventory_args(example_lab, override)], capture_output=True, text=True, check=False, timeout=600
        )
    finally:
        example_lab.start("example-3")
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("example-3: unreachable")]
    assert len(lines) == 1 and "Connection refused" in lines[0]
    assert "noc@example.net" in host(example_lab, "example-1").file("/etc/motd").content_string
    assert "noc@example.net" not in host(example_lab, "example-3").file("/etc/motd").content_string


def test_changed_host_key_is_refused_and_nothing_is_pushed(example_lab: Lab, tmp_path: Path) -> None:
    converge(example_lab)
    known = example_lab.known_hosts.read_text()
    try:
        example_lab.exec("example-2", ["sh", "-c", "rm /etc/ssh/ssh_host_*"])
        example_lab.stop("example-2")
        example_lab.start("example-2")  # sshd makes new host keys on start
        override = contact_override(tmp_path / "override.yml", "keys@example.net")
        done = provision("apply", *inventory_args(example_lab, override))
        assert done.returncode == 1
        assert "example-2: unreachable: host key of" in done.stdout and "has CHANGED" in done.stdout
        assert "keys@example.net" not in host(example_lab, "example-2").file("/etc/motd").content_string
        assert "keys@example.net" in host(example_lab, "example-1").file("/etc/motd").content_string
    finally:
        lines = [line for line in known.splitlines() if not line.startswith(example_lab.host("example-2").address + " ")]
        lines += [f"{example_lab.host('example-2').address} {key}" for key in example_lab.host_keys(example_lab.host("example-2"))]
        example_lab.known_hosts.write_text("\n".join(lines) + "\n")


def test_unknown_host_key_is_refused_unless_asked(example_lab: Lab) -> None:
    converge(example_lab)
    saved = example_lab.known_hosts.read_text()
    try:
        example_lab.known_hosts.write_text("")
        refused = provision("check", *inventory_args(example_lab), "--limit", "example-1")
        assert refused.returncode == 1 and "is not in" in refused.stdout and "--accept-new-host-keys" in refused.stdout
        accepted = provision("check", *inventory_args(example_lab), "--limit", "example-1", "--accept-new-host-keys")
        assert accepted.returncode == 0, accepted.stdout
        # Recorded as ssh_config says (Debian hashes host names): ask ssh-keygen, not grep.
        found = subprocess.run(["ssh-keygen", "-F", example_lab.host("example-1").address, "-f", str(example_lab.known_hosts)], check=False)
        assert found.returncode == 0
    finally:
        example_lab.known_hosts.write_text(saved)


def test_ssh_login_shows_the_motd(example_lab: Lab) -> None:
    import time

    import paramiko

    converge(example_lab)
    client = paramiko.SSHClient()
    client.load_host_keys(str(example_lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        example_lab.host("example-1").address,
        username="root",
        key_filename=str(example_lab.key_file),
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        shell = client.invoke_shell()
        seen = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"Live addresses:" not in seen:
            if shell.recv_ready():
                seen += shell.recv(65536)
            else:
                time.sleep(0.05)
    finally:
        client.close()
    text = seen.decode("utf-8", "replace")
    assert "example-1: Outbound mail relay" in text
    assert "Roles: motd, sshd" in text
    assert "Live addresses:" in text and example_lab.host("example-1").address in text


def test_a_key_the_host_refuses_is_named(example_lab: Lab, tmp_path: Path) -> None:
    """The key tried and sshd's refusal, over either transport; never the host's Banner as the reason.

    example-1's sshd shows a Banner once converged: OpenSSH's client prints it
    on standard error, which once made it the "reason" of the failure."""
    converge(example_lab, "--limit", "example-1")
    wrong = tmp_path / "not-authorised_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    said = {}
    for connection in ("ssh", "paramiko"):
        override = tmp_path / f"key-{connection}.yml"
        override.write_text(f"all:\n  hosts:\n    example-1: {{ssh_key: {wrong}, connection: {connection}}}\n")
        done = provision("check", *inventory_args(example_lab, override), "--limit", "example-1")
        assert done.returncode == 1, done.stdout + done.stderr
        said[connection] = " ".join(done.stdout.split())
        assert "example-1: unreachable: authentication to" in said[connection], connection
        assert f"as root failed with the key {wrong}: " in said[connection], connection
        assert "Authorised access only" not in done.stdout + done.stderr, connection
    assert f"{wrong}: Permission denied (publickey" in said["ssh"]  # sshd's refusal, as OpenSSH's client words it


def test_the_hosts_banner_is_not_in_a_commands_standard_error(example_lab: Lab) -> None:
    """The first command on a new OpenSSH connection: its stderr is the remote command's alone."""
    from provision.connectors import connect, settings_from_vars
    from provision.connectors.openssh import close_connection

    converge(example_lab, "--limit", "example-1")
    lab_host = example_lab.host("example-1")
    values = {"host": lab_host.address, "user": "root", "ssh_key": str(example_lab.key_file), "known_hosts": str(example_lab.known_hosts)}
    settings = settings_from_vars("example-1", values)
    close_connection(settings)
    done = connect(settings).run("echo out; echo err >&2")
    assert (done.exit_code, done.stdout, done.stderr) == (0, b"out\n", b"err\n")
