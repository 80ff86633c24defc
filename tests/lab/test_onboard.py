"""``provision onboard`` takes a bare lab host to a verified mail server.

The host is a fresh Debian container with only sshd; the user's inventory
(with comments) names it mx1.example.test and knows nothing else about it.
One command adds it, converges motd, ssl and postfix with three transports,
sends a test message through each to a sink on loopback and confirms it,
reports reverse DNS from a DNS server on loopback (one address has a good
PTR, two have none) and lists the PTR records left to request. A second run
changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.lab.lab import Lab, address_block
from tests.support.dns_server import DnsServer
from tests.support.lab import NAMESPACE, module_lab
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.lab

onboard_lab = module_lab("onboard", 1)
HOST = "mx1.example.test"
SINK_PORT = 2525
HOSTS_YML = """\
# The mail fleet. Relays are added by 'provision onboard'.
all:
  children:
    mail:   # outbound relays, one transport per address
      hosts: {}
"""


@pytest.fixture(scope="module")
def sink(onboard_lab: Lab) -> Iterator[SmtpSink]:
    with SmtpSink(f"{address_block(f'{NAMESPACE}/onboard')}.200", SINK_PORT) as running:
        yield running


@pytest.fixture(scope="module")
def dns_server(onboard_lab: Lab) -> Iterator[DnsServer]:
    first = onboard_lab.host("onboard-1").extra_addresses[0]
    with DnsServer(f"{address_block(f'{NAMESPACE}/onboard')}.53") as server:
        server.serve({f"out1.{HOST}": first}, {first: f"out1.{HOST}"})
        yield server


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Path:
    folder = tmp_path_factory.mktemp("onboard") / "inventory"
    folder.mkdir()
    (folder / "hosts.yml").write_text(HOSTS_YML)
    (folder / "site.yml").write_text("- hosts: mail\n  roles: [motd, ssl, postfix]\n")
    (folder / "group_vars").mkdir()
    (folder / "group_vars" / "mail.yml").write_text(
        "# Every relay listens on its own address and relays to the sink.\n"
        'postfix_myhostname: "{{ inventory_hostname }}"\n'
        'postfix_inet_interfaces: ["{{ ansible_host }}"]\n'
        f'postfix_relayhost: "[{sink.address}]:{SINK_PORT}"\n'
        "postfix_maillog_file: /var/log/postfix.log\n"
        "postfix_tls: {cert_file: /etc/ssl/certs/mail.pem, key_file: /etc/ssl/private/mail.key}\n"
        'ssl_certificates: [{name: mail, common_name: "{{ inventory_hostname }}", notify: [reload postfix]}]\n'
        "motd_message: Outbound relay, managed by provision.\n"
    )
    return folder


def onboard(lab: Lab, inventory: Path, dns: DnsServer) -> subprocess.CompletedProcess[str]:
    host = lab.host("onboard-1")
    args = ["provision", "onboard", HOST, "-i", str(inventory), "--group", "mail"]
    for address in host.extra_addresses[:3]:
        args += ["--address", address]
    args += ["--ssh-host", host.address, "--ssh-user", "root", "--ssh-key", str(lab.key_file), "--known-hosts", str(lab.known_hosts)]
    args += ["--verify-to", "postmaster@sink.example.test", "--dns-server", f"{dns.address}:{dns.port}", "--verify-timeout", "90"]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=1200, env=state_env(inventory))


def state_env(inventory: Path) -> dict[str, str]:
    """The run log of this module's runs, apart from everyone else's."""
    return {**os.environ, "COLUMNS": "200", "PROVISION_STATE_DIR": str(inventory.parent / "state")}


def test_bare_host_to_verified_mail_server_in_one_command(onboard_lab: Lab, inventory: Path, sink: SmtpSink, dns_server: DnsServer) -> None:
    code, _ = onboard_lab.exec("onboard-1", ["sh", "-c", "command -v postconf"])
    assert code != 0, "the lab host must start without Postfix"
    first, second, third = onboard_lab.host("onboard-1").extra_addresses[:3]

    started = time.monotonic()
    done = onboard(onboard_lab, inventory, dns_server)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"onboard of a bare host: {seconds:.1f} s")

    received = sink.wait_for(3, timeout=30)
    assert {(m.peer, m.helo) for m in received} == {(first, f"out1.{HOST}"), (second, f"out2.{HOST}"), (third, f"out3.{HOST}")}
    assert sorted(m.subject for m in received) == [f"provision onboard: {HOST} via out{n}" for n in (1, 2, 3)]
    assert done.stdout.count("delivered") >= 3

    # The user's comments survive; the host is added to its group.
    hosts_text = (inventory / "hosts.yml").read_text()
    assert hosts_text.startswith("# The mail fleet. Relays are added by 'provision onboard'.\n")
    assert "mail:   # outbound relays, one transport per address" in hosts_text and f"{HOST}:" in hosts_text

    # The checklist asks for exactly the two missing PTRs, with their names.
    checklist = done.stdout.split("checklist", 1)[1]
    assert f"PTR record {second} → out2.{HOST}" in checklist and f"PTR record {third} → out3.{HOST}" in checklist
    assert f"PTR record {first}" not in checklist
    assert f"ip4:{first} ip4:{second} ip4:{third}" in checklist

    # The converge is in the run log, under the run id of the host's backups: history and rollback know it.
    history = subprocess.run(["provision", "history", "--host", HOST, "--json"], capture_output=True, text=True, env=state_env(inventory))
    (entry,) = json.loads(history.stdout)
    assert entry["command"] == "onboard" and entry["hosts"][HOST]["status"] == "changed"
    code, backups = onboard_lab.exec("onboard-1", ["ls", "/var/backups/provision"])
    assert code == 0 and entry["run_id"] in backups.split(), backups


def test_second_onboard_changes_nothing(onboard_lab: Lab, inventory: Path, sink: SmtpSink, dns_server: DnsServer) -> None:
    files = {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()}
    done = onboard(onboard_lab, inventory, dns_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed=0" in done.stdout and "unchanged" in done.stdout
    assert {p: p.read_bytes() for p in inventory.rglob("*") if p.is_file()} == files


def test_failed_step_says_so_and_a_rerun_continues(onboard_lab: Lab, inventory: Path, dns_server: DnsServer, tmp_path: Path) -> None:
    host = onboard_lab.host("onboard-1")
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    args = ["provision", "onboard", HOST, "-i", str(inventory), "--group", "mail", "--known-hosts", str(empty_known_hosts)]
    args += ["--ssh-key", str(onboard_lab.key_file), "--ssh-host", host.address]
    refused = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    assert refused.returncode == 1
    assert "error: ssh:" in refused.stderr and "--accept-new-host-keys" in refused.stderr
    assert "continues from the ssh step" in refused.stderr
    accepted = subprocess.run([*args, "--accept-new-host-keys"], capture_output=True, text=True, check=False, timeout=600)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # Recorded as ssh_config says (Debian hashes host names): ask ssh-keygen, not grep.
    found = subprocess.run(["ssh-keygen", "-F", host.address, "-f", str(empty_known_hosts)], capture_output=True, check=False)
    assert found.returncode == 0
