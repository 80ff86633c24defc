"""The python_mta role on a real Debian host, with Postfix as its peer.

``pmta-1`` runs provision-mta (roles ssl and python_mta), ``pmta-2`` runs
Postfix (role postfix) whose relayhost is pmta-1. A DNS server on loopback
gives ``pm2.example.test`` an MX pointing at pmta-2 and
``fallback.example.test`` only an A record. Mail goes both ways over real
SMTP and lands in real Maildirs; the MTA's outgoing connections must come
from its transport's own address with its HELO name.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.lab.lab import Lab, address_block
from tests.support.dns_server import DnsServer
from tests.support.lab import NAMESPACE, module_lab

pytestmark = pytest.mark.lab

pmta_lab = module_lab("pmta", 2)
MTA, RELAY = "pmta-1", "pmta-2"


@pytest.fixture(scope="module")
def dns_server(pmta_lab: Lab) -> Iterator[DnsServer]:
    relay = pmta_lab.host(RELAY).address
    with DnsServer(f"{address_block(f'{NAMESPACE}/pmta')}.53") as server:
        server.serve(
            {}, {}, mx={"pm2.example.test": "pmta-2.example.test"}, hosts={"pmta-2.example.test": relay, "fallback.example.test": relay}
        )
        yield server


def host_vars(lab: Lab, dns: DnsServer, **mta_changes: Any) -> dict[str, dict[str, Any]]:
    mta, relay = lab.host(MTA), lab.host(RELAY)
    return {
        MTA: {
            "ssl_certificates": [{"name": "mta", "common_name": "pmta-1.example.test", "notify": ["reload provision-mta"]}],
            "postfix_myhostname": "pmta-1.example.test",
            "postfix_mydestination": ["$myhostname", "pm1.example.test", "localhost"],
            "postfix_inet_interfaces": [mta.address],
            "postfix_tls": {"cert_file": "/etc/ssl/certs/mta.pem", "key_file": "/etc/ssl/private/mta.key"},
            "postfix_transports": [{"name": "out1", "bind_address": mta.extra_addresses[0], "helo_name": "out1.example.test"}],
            "postfix_transport_selection": "random",
            "postfix_aliases": {"postmaster": "root", "ops": ["root", "root@pm2.example.test"]},
            "postfix_main": {"home_mailbox": "Maildir/"},
            "python_mta_dns_server": f"{dns.address}:{dns.port}",
            **mta_changes,
        },
        RELAY: {
            "postfix_myhostname": "pmta-2.example.test",
            "postfix_mydestination": ["$myhostname", "pm2.example.test", "fallback.example.test", "localhost"],
            "postfix_inet_interfaces": [relay.address],
            "postfix_relayhost": f"[{mta.address}]:25",
            "postfix_maillog_file": "/var/log/postfix.log",
            "postfix_main": {"home_mailbox": "Maildir/"},
        },
    }


def apply(lab: Lab, folder: Path, hosts: dict[str, dict[str, Any]], site: str | None = None) -> subprocess.CompletedProcess[str]:
    folder.mkdir(exist_ok=True)
    groups = {"mta": {"hosts": {MTA: hosts[MTA]}}, "relay": {"hosts": {RELAY: hosts[RELAY]}}}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": groups}}))
    site = site or "- hosts: mta\n  roles: [ssl, python_mta]\n- hosts: relay\n  roles: [postfix]\n"
    (folder / "site.yml").write_text(site)
    command = ["provision", "apply", "-i", str(folder), "-i", str(lab.inventory_file), "--json"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=1200)


def hosts_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)["hosts"]
    return result


def sh(lab: Lab, host: str, command: str) -> str:
    code, output = lab.exec(host, ["sh", "-c", command])
    assert code == 0, f"{host}: {command}: {output}"
    return output


def delivered(lab: Lab, host: str, marker: str, timeout: float = 60) -> str:
    """The message in root's Maildir whose text holds ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _code, output = lab.exec(host, ["sh", "-c", f"grep -l -r -F {marker} /root/Maildir/new 2>/dev/null | head -n 1 | xargs -r cat"])
        if output.strip():
            return output
        time.sleep(0.5)
    logs = [
        lab.exec(name, ["sh", "-c", "tail -n 25 /var/log/provision-mta.log /var/log/postfix.log 2>/dev/null; mailq"])[1]
        for name in (MTA, RELAY)
    ]
    raise AssertionError(f"{marker} did not reach {host}'s Maildir; logs:\n" + "\n".join(logs))


@pytest.fixture(scope="module")
def inventory(pmta_lab: Lab, dns_server: DnsServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pmta") / "inventory"
    first = hosts_of(apply(pmta_lab, folder, host_vars(pmta_lab, dns_server)))
    assert first[MTA]["status"] == "changed" and "install provision-mta" in first[MTA]["handlers"]
    return folder


def test_converges_supervised_and_a_second_apply_changes_nothing(pmta_lab: Lab, dns_server: DnsServer, inventory: Path) -> None:
    assert "provision-mta is running" in sh(pmta_lab, MTA, "/etc/init.d/provision-mta status")
    assert "provision-mta" in sh(pmta_lab, MTA, "/opt/provision-mta/bin/provision-mta -c /etc/postfix check")
    again = hosts_of(apply(pmta_lab, inventory, host_vars(pmta_lab, dns_server)))
    assert again[MTA]["changed"] == [] and again[MTA]["handlers"] == [] and again[RELAY]["changed"] == []
    # The private key and the queue are root's alone.
    assert sh(pmta_lab, MTA, "stat -c %a /etc/ssl/private/mta.key").strip() == "600"
    assert sh(pmta_lab, MTA, "stat -c %a /var/spool/provision-mta/incoming").strip() == "700"


def test_postfix_relays_into_the_mta_which_delivers_to_maildir(pmta_lab: Lab, inventory: Path) -> None:
    marker = f"p2m-{uuid.uuid4().hex[:10]}"
    sh(pmta_lab, RELAY, f"printf 'Subject: {marker}\\n\\nfrom Postfix\\n' | sendmail -f root@pm2.example.test root@pm1.example.test")
    message = delivered(pmta_lab, MTA, marker)
    assert "from pmta-2.example.test" in message  # Postfix's HELO, in the MTA's Received header


def test_the_mta_sends_by_mx_and_by_a_record_from_its_bound_address(pmta_lab: Lab, inventory: Path) -> None:
    marker = f"m2p-{uuid.uuid4().hex[:10]}"
    text = f"To: root@pm2.example.test\nCc: root@fallback.example.test\nBcc: ops@pm1.example.test\nSubject: {marker}\n\nhello\n"
    sh(pmta_lab, MTA, f"printf '{text}' | sendmail -t -f root@pm1.example.test")
    copy = delivered(pmta_lab, RELAY, marker)
    bound = pmta_lab.host(MTA).extra_addresses[0]
    assert "from out1.example.test (" in copy and f"[{bound}]" in copy  # transport out1's HELO and address
    assert "Bcc:" not in copy
    # Bcc to an alias: one local copy for root, one more through Postfix.
    delivered(pmta_lab, MTA, marker)
    # Postfix logs one "QID: client=NAME[ADDRESS]" per message it takes: one for
    # pm2.example.test, one for fallback.example.test, both from out1's address.
    log = sh(pmta_lab, RELAY, "cat /var/log/postfix.log")
    assert len(re.findall(rf": client=[^\[\s]*\[{re.escape(bound)}\]", log)) >= 2


def test_starttls_with_the_ssl_roles_certificate(pmta_lab: Lab, inventory: Path) -> None:
    address = pmta_lab.host(MTA).address
    with smtplib.SMTP(address, 25, timeout=30) as client:
        client.ehlo("tester.example.test")
        assert client.has_extn("starttls") and client.has_extn("size") and client.has_extn("pipelining")
    handshake = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{address}:25", "-CAfile", str(inventory / ".local-ca" / "ca.pem"),
         "-verify_return_error", "-verify_hostname", "pmta-1.example.test"],
        input="QUIT\n", capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" in handshake.stdout, handshake.stdout + handshake.stderr


def mail(lab: Lab, inventory: Path, action: str) -> dict[str, Any]:
    """``provision mail ACTION`` on the MTA host: its one instance."""
    done = subprocess.run(
        ["provision", "mail", action, "-i", str(inventory), "-i", str(lab.inventory_file), "--limit", MTA, "--json"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (instance,) = json.loads(done.stdout)["hosts"][MTA]["instances"]
    assert instance["name"] == "provision-mta"
    return dict(instance)


def queued(lab: Lab, queue: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(sh(lab, MTA, "/opt/provision-mta/bin/provision-mta queue count")).get(queue, 0) < 1:
        assert time.monotonic() < deadline, f"nothing reached {queue}: " + sh(lab, MTA, "mailq")
        time.sleep(0.3)


SERVE = "pgrep -f 'provision_mta[.]daemon -c /etc/postfix serve'"


def test_config_change_reloads_without_a_restart_and_keeps_queued_mail(pmta_lab: Lab, dns_server: DnsServer, inventory: Path) -> None:
    serve_pid = sh(pmta_lab, MTA, SERVE).strip()
    marker = f"held-{uuid.uuid4().hex[:10]}"
    sh(pmta_lab, RELAY, "postfix stop")  # the next hop is down: the message is deferred
    try:
        sh(pmta_lab, MTA, f"printf 'Subject: {marker}\\n\\nkept\\n' | sendmail root@pm2.example.test")
        queued(pmta_lab, "deferred")
        mail(pmta_lab, inventory, "hold")
        assert mail(pmta_lab, inventory, "queue")["queue"]["queues"] == {"hold": 1}

        changed = hosts_of(apply(pmta_lab, inventory, host_vars(pmta_lab, dns_server, postfix_message_size_limit=20000)))
        assert changed[MTA]["changed"] == ["/etc/postfix/main.cf"] and changed[MTA]["handlers"] == ["reload provision-mta"]
        assert sh(pmta_lab, MTA, SERVE).strip() == serve_pid  # reloaded, not restarted
        with smtplib.SMTP(pmta_lab.host(MTA).address, 25, timeout=30) as client:
            client.ehlo("tester.example.test")
            assert client.esmtp_features["size"] == "20000"
        assert mail(pmta_lab, inventory, "queue")["queue"]["queues"] == {"hold": 1}
    finally:
        sh(pmta_lab, RELAY, "postfix status >/dev/null 2>&1 || postfix start")  # apply may have started it
    mail(pmta_lab, inventory, "release")
    delivered(pmta_lab, RELAY, marker)


def test_the_supervisor_starts_a_killed_daemon_again_and_nothing_acknowledged_is_lost(pmta_lab: Lab, inventory: Path) -> None:
    marker = f"kill-{uuid.uuid4().hex[:10]}"
    sh(pmta_lab, RELAY, "postfix stop")
    try:
        with smtplib.SMTP(pmta_lab.host(MTA).address, 25, timeout=30) as client:
            client.sendmail("a@pm1.example.test", ["root@pm2.example.test"], f"Subject: {marker}\r\n\r\nsurvives\r\n")
        queued(pmta_lab, "deferred")
        old_pid = sh(pmta_lab, MTA, SERVE).strip()
        sh(pmta_lab, MTA, f"kill -9 {old_pid}")
        deadline = time.monotonic() + 30
        while pmta_lab.exec(MTA, ["sh", "-c", SERVE])[1].strip() in ("", old_pid):
            assert time.monotonic() < deadline, "the supervisor did not start the daemon again"
            time.sleep(0.3)
    finally:
        sh(pmta_lab, RELAY, "postfix status >/dev/null 2>&1 || postfix start")  # apply may have started it
    assert "starting it again" in sh(pmta_lab, MTA, "cat /var/log/provision-mta.log")
    time.sleep(1)  # the new daemon's listener
    mail(pmta_lab, inventory, "flush")
    delivered(pmta_lab, RELAY, marker)


def test_refused_where_another_mta_owns_sendmail_and_nothing_changes(
    pmta_lab: Lab, dns_server: DnsServer, inventory: Path, tmp_path: Path
) -> None:
    before = sh(pmta_lab, RELAY, "sha256sum /etc/postfix/main.cf")
    site = "- hosts: relay\n  roles: [python_mta]\n"
    done = apply(pmta_lab, tmp_path / "inventory", host_vars(pmta_lab, dns_server), site=site)
    assert done.returncode != 0
    (error,) = json.loads(done.stdout)["hosts"][RELAY]["errors"]
    # Postfix's mailq is a symlink, which the plan already refuses to replace;
    # where it is not, the validator names the package that owns sendmail.
    assert "/usr/bin/mailq is not a regular file" in error or "/usr/sbin/sendmail belongs to package postfix" in error, error
    assert sh(pmta_lab, RELAY, "sha256sum /etc/postfix/main.cf") == before
    assert "No such file" in pmta_lab.exec(RELAY, ["ls", "/opt/provision-mta"])[1]
