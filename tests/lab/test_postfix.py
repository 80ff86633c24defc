"""The postfix role on real Debian hosts with real Postfix and real mail:
transports bound to their own addresses, selection by sender and at random,
a postmulti instance, aliases, tuned parameters, reload versus restart."""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from provision.lab.lab import Lab, address_block
from tests.support.lab import NAMESPACE, converged, module_lab, run_roles
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.lab
SINK_PORT = 2525


mail_lab = module_lab("postfix", 2)


@pytest.fixture(scope="module")
def sink(mail_lab: Lab) -> Iterator[SmtpSink]:
    with SmtpSink(f"{address_block(f'{NAMESPACE}/postfix')}.200", SINK_PORT) as running:
        yield running


def base_vars(lab: Lab, name: str, sink_address: str) -> dict[str, Any]:
    host = lab.host(name)
    return {
        "postfix_myhostname": f"{name}.example.net",
        "postfix_inet_interfaces": [host.address],
        "postfix_relayhost": f"[{sink_address}]:{SINK_PORT}",
        "postfix_maillog_file": "/var/log/postfix.log",
        "postfix_transports": [
            {"name": f"out{i}", "bind_address": address, "helo_name": f"out{i}.example.net"}
            for i, address in enumerate(host.extra_addresses, start=1)
        ],
    }


def apply(lab: Lab, tmp_path: Path, hosts: dict[str, dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return run_roles(lab, tmp_path, ["postfix"], hosts)


def converge(lab: Lab, tmp_path: Path, hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    done = apply(lab, tmp_path, hosts)
    return {name: converged(done, name) for name in hosts}


def sh(lab: Lab, host: str, command: str) -> str:
    code, output = lab.exec(host, ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def send(address: str, sender: str, subject: str, port: int = 25) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "someone@remote.example.org", subject
    message.set_content("test")
    with smtplib.SMTP(address, port, timeout=30) as client:
        client.send_message(message)


def master_pid(lab: Lab, host: str, queue: str = "/var/spool/postfix") -> str:
    return sh(lab, host, f"head -n1 {queue}/pid/master.pid").strip()


def test_sender_selection_binds_each_transports_address_and_helo(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    host_vars["postfix_transport_selection"] = "sender"
    host_vars["postfix_sender_transports"] = {"@news.example.net": "out1", "@shop.example.net": "out2", "@mail.example.net": "out3"}
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    tag = uuid.uuid4().hex[:8]
    for sender in ("a@news.example.net", "b@shop.example.net", "c@mail.example.net"):
        sh(mail_lab, "postfix-1", f"printf 'Subject: {tag}\\n\\nbody\\n' | sendmail -f {sender} someone@remote.example.org")
    sink.wait_for(len(sink.messages) + 0)
    got = {m.sender: (m.peer, m.helo) for m in _tagged(sink, tag, 3)}
    extra = mail_lab.host("postfix-1").extra_addresses
    assert got == {
        "a@news.example.net": (extra[0], "out1.example.net"),
        "b@shop.example.net": (extra[1], "out2.example.net"),
        "c@mail.example.net": (extra[2], "out3.example.net"),
    }


def test_random_selection_spreads_over_all_transports(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    host_vars["postfix_transport_selection"] = "random"
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    tag = uuid.uuid4().hex[:8]
    # Distinct senders (as VERP gives bulk mail): trivial-rewrite caches a
    # resolved sender, so one sender would keep its first random pick a while.
    for number in range(30):
        send(mail_lab.host("postfix-1").address, f"list+{number}@bulk.example.net", tag)
    seen = {(m.peer, m.helo) for m in _tagged(sink, tag, 30)}
    extra = mail_lab.host("postfix-1").extra_addresses
    assert seen == {(address, f"out{i}.example.net") for i, address in enumerate(extra, start=1)}


def _tagged(sink: SmtpSink, tag: str, count: int) -> list[Any]:
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [m for m in sink.messages if m.subject == tag]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{len([m for m in sink.messages if m.subject == tag])} of {count} messages tagged {tag} arrived")


def instance_vars(lab: Lab, sink_address: str) -> dict[str, Any]:
    host = lab.host("postfix-2")
    host_vars = base_vars(lab, "postfix-2", sink_address)
    host_vars.update(
        {
            "postfix_transports": [],
            "postfix_aliases": {"postmaster": "root", "team": "root"},
            "postfix_smtpd_timeout": "120s",
            "postfix_maximal_queue_lifetime": "2d",
            "postfix_instances": [
                {
                    "name": "postfix-out",
                    "inet_interfaces": [host.extra_addresses[0]],
                    "main": {"smtpd_timeout": "60s"},
                    "transports": [
                        {"name": "bulk1", "bind_address": host.extra_addresses[1], "helo_name": "bulk1.example.net"},
                        {"name": "bulk2", "bind_address": host.extra_addresses[2], "helo_name": "bulk2.example.net"},
                    ],
                    "transport_selection": "random",
                }
            ],
        }
    )
    return host_vars


def test_secondary_instance_listens_queues_and_binds_on_its_own(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    converge(mail_lab, tmp_path, {"postfix-2": instance_vars(mail_lab, sink.address)})
    host = mail_lab.host("postfix-2")
    instances = sh(mail_lab, "postfix-2", "postmulti -l")
    assert "postfix-out" in instances and "/etc/postfix-out" in instances
    listening = sh(mail_lab, "postfix-2", "ss -ltn")
    assert f"{host.extra_addresses[0]}:25" in listening and f"{host.address}:25" in listening
    assert sh(mail_lab, "postfix-2", "postconf -c /etc/postfix-out -h queue_directory").strip() == "/var/spool/postfix-out"
    tag = uuid.uuid4().hex[:8]
    for number in range(20):
        send(host.extra_addresses[0], f"news+{number}@bulk.example.net", tag)
    seen = {(m.peer, m.helo) for m in _tagged(sink, tag, 20)}
    assert seen == {(host.extra_addresses[1], "bulk1.example.net"), (host.extra_addresses[2], "bulk2.example.net")}
    # tuned parameters, primary and instance
    assert sh(mail_lab, "postfix-2", "postconf -h smtpd_timeout").strip() == "120s"
    assert sh(mail_lab, "postfix-2", "postconf -h maximal_queue_lifetime").strip() == "2d"
    assert sh(mail_lab, "postfix-2", "postconf -c /etc/postfix-out -h smtpd_timeout").strip() == "60s"
    assert sh(mail_lab, "postfix-2", "postconf -c /etc/postfix-out -h maximal_queue_lifetime").strip() == "2d"


def test_instance_queues_separately(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = instance_vars(mail_lab, sink.address)
    host_vars["postfix_relayhost"] = f"[{sink.address}]:{SINK_PORT + 1}"  # nobody listens: mail stays queued
    converge(mail_lab, tmp_path, {"postfix-2": host_vars})
    host = mail_lab.host("postfix-2")
    sh(mail_lab, "postfix-2", "postsuper -d ALL >/dev/null 2>&1; postsuper -c /etc/postfix-out -d ALL >/dev/null 2>&1; true")
    send(host.extra_addresses[0], "held@bulk.example.net", "queued in the instance")
    sh(mail_lab, "postfix-2", 'for i in $(seq 50); do [ -n "$(postqueue -c /etc/postfix-out -j)" ] && break; sleep 0.2; done')
    assert "held@bulk.example.net" in sh(mail_lab, "postfix-2", "postqueue -c /etc/postfix-out -j")
    assert "held@bulk.example.net" not in sh(mail_lab, "postfix-2", "postqueue -j")


def test_aliases_deliver_and_newaliases_runs_only_on_change(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = instance_vars(mail_lab, sink.address)
    converge(mail_lab, tmp_path, {"postfix-2": host_vars})
    tag = uuid.uuid4().hex[:8]
    sh(mail_lab, "postfix-2", f"printf 'Subject: {tag}\\n\\nto the team\\n' | sendmail team")
    sh(
        mail_lab,
        "postfix-2",
        f"for i in $(seq 100); do grep -q {tag} /var/mail/root 2>/dev/null && break; sleep 0.2; done; grep -q {tag} /var/mail/root",
    )
    unchanged = converge(mail_lab, tmp_path, {"postfix-2": host_vars})["postfix-2"]
    assert unchanged["status"] == "ok" and unchanged["handlers"] == []
    host_vars["postfix_aliases"] = {"postmaster": "root", "team": "root", "ops": "root"}
    changed = converge(mail_lab, tmp_path, {"postfix-2": host_vars})["postfix-2"]
    assert changed["changed"] == ["/etc/aliases"] and changed["handlers"] == ["newaliases"]
    assert "ops" in sh(mail_lab, "postfix-2", "postalias -q ops hash:/etc/aliases && echo ops")


def test_changed_parameter_reloads_and_keeps_process_and_queue(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    host_vars["postfix_relayhost"] = f"[{sink.address}]:{SINK_PORT + 1}"
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    sh(mail_lab, "postfix-1", "postsuper -d ALL >/dev/null 2>&1; true")
    send(mail_lab.host("postfix-1").address, "keep@example.net", "stays queued")
    sh(mail_lab, "postfix-1", 'for i in $(seq 50); do [ -n "$(postqueue -j)" ] && break; sleep 0.2; done')
    pid = master_pid(mail_lab, "postfix-1")
    again = converge(mail_lab, tmp_path, {"postfix-1": host_vars})["postfix-1"]
    assert again["status"] == "ok" and again["handlers"] == [] and again["round_trips"] == 1
    host_vars["postfix_smtpd_timeout"] = "90s"
    reloaded = converge(mail_lab, tmp_path, {"postfix-1": host_vars})["postfix-1"]
    assert reloaded["changed"] == ["/etc/postfix/main.cf"] and reloaded["handlers"] == ["reload postfix"]
    assert master_pid(mail_lab, "postfix-1") == pid
    assert "keep@example.net" in sh(mail_lab, "postfix-1", "postqueue -j")
    assert sh(mail_lab, "postfix-1", "postconf -h smtpd_timeout").strip() == "90s"


def test_inet_interfaces_change_restarts(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    pid = master_pid(mail_lab, "postfix-1")
    host_vars["postfix_inet_interfaces"] = [mail_lab.host("postfix-1").address, "127.0.0.1"]
    try:
        restarted = converge(mail_lab, tmp_path, {"postfix-1": host_vars})["postfix-1"]
        assert "restart postfix" in restarted["handlers"]
        assert master_pid(mail_lab, "postfix-1") != pid
        assert "127.0.0.1:25" in sh(mail_lab, "postfix-1", "ss -ltn")
    finally:
        converge(mail_lab, tmp_path, {"postfix-1": base_vars(mail_lab, "postfix-1", sink.address)})
    assert "127.0.0.1:25" not in sh(mail_lab, "postfix-1", "ss -ltn")


def test_unknown_parameter_fails_validation_and_changes_nothing(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    before = sh(mail_lab, "postfix-1", "sha256sum /etc/postfix/main.cf")
    host_vars["postfix_main"] = {"smtpd_tiemout": "60s"}
    # check predicts what apply will do: the drift is staged and Postfix's own check refuses it.
    checked = run_roles(mail_lab, tmp_path, ["postfix"], {"postfix-1": host_vars}, "check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    [would] = json.loads(checked.stdout)["hosts"]["postfix-1"]["errors"]
    assert would.startswith("would fail validation") and "unused parameter: smtpd_tiemout=60s" in would, would
    done = apply(mail_lab, tmp_path, {"postfix-1": host_vars})
    assert done.returncode == 1
    errors = json.loads(done.stdout)["hosts"]["postfix-1"]["errors"][0]
    assert "unused parameter: smtpd_tiemout=60s" in errors and "nothing was changed" in errors
    assert sh(mail_lab, "postfix-1", "sha256sum /etc/postfix/main.cf") == before


def test_mail_commands_across_hosts_and_instances(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = instance_vars(mail_lab, sink.address)
    host_vars["postfix_relayhost"] = f"[{sink.address}]:{SINK_PORT + 1}"  # nothing listens: mail stays queued
    converge(mail_lab, tmp_path, {"postfix-2": host_vars})
    host = mail_lab.host("postfix-2")
    inventory = ["-i", str(mail_lab.inventory_file), "--limit", "postfix-2"]
    sh(mail_lab, "postfix-2", "postsuper -d ALL >/dev/null 2>&1; postsuper -c /etc/postfix-out -d ALL >/dev/null 2>&1; true")
    for number in range(3):
        send(host.extra_addresses[0], f"q{number}@bulk.example.net", "queued")
    sh(mail_lab, "postfix-2", "for i in $(seq 100); do [ $(postqueue -c /etc/postfix-out -j | wc -l) -ge 3 ] && break; sleep 0.2; done")

    def mail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["provision", "mail", *args, *inventory],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "COLUMNS": "200"},
        )

    queue = mail("queue", "--json")
    assert queue.returncode == 0, queue.stderr
    instances = {i["name"]: i["queue"] for i in json.loads(queue.stdout)["hosts"]["postfix-2"]["instances"]}
    assert instances["postfix-out"]["count"] == 3 and instances["-"]["count"] == 0
    assert instances["postfix-out"]["top_destinations"] == [["remote.example.org", 3]]
    table = mail("queue")
    assert "postfix-out" in table.stdout and "remote.example.org (3)" in table.stdout

    # Deferred now (a requeue would send them through the maildrop, which postsuper -h leaves alone).
    held = mail("hold", "--instance", "postfix-out")
    assert held.returncode == 0 and "postfix-2 postfix-out: put on hold: 3 held, 3 in the queue" in held.stdout
    released = mail("release", "--instance", "postfix-out")
    assert released.returncode == 0 and "postfix-2 postfix-out: released: 0 held, 3 in the queue" in released.stdout

    assert mail("flush").returncode == 0
    assert mail("requeue", "--instance", "postfix-out").returncode == 0
    check = mail("check")
    assert check.returncode == 0 and "map types:" in check.stdout and "hash" in check.stdout

    refused = mail("delete")
    assert refused.returncode == 1 and "--all --yes" in refused.stderr
    assert mail("delete", "--all", "--yes", "--instance", "postfix-out").returncode == 0
    assert sh(mail_lab, "postfix-2", "postqueue -c /etc/postfix-out -j | wc -l").strip() == "0"


def test_access_map_rejects_a_client(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    host_vars["postfix_access"] = {"client": {sink.address: "REJECT blocked by provision test"}}
    result = converge(mail_lab, tmp_path, {"postfix-1": host_vars})["postfix-1"]
    assert "postmap access_client" in result["handlers"]
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.net", "b@remote.example.org", "blocked"
    message.set_content("x")
    address = mail_lab.host("postfix-1").address
    with (
        smtplib.SMTP(address, 25, timeout=30, source_address=(sink.address, 0)) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.send_message(message)
    assert b"blocked by provision test" in str(refused.value).encode()
    converge(mail_lab, tmp_path, {"postfix-1": base_vars(mail_lab, "postfix-1", sink.address)})


def test_starttls_with_the_configured_certificate(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    sh(
        mail_lab,
        "postfix-1",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout /etc/ssl/private/postfix-test.key "
        "-out /etc/ssl/certs/postfix-test.pem -subj /CN=postfix-1.example.net -days 2 2>/dev/null; "
        "chmod 600 /etc/ssl/private/postfix-test.key",
    )
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    host_vars["postfix_tls"] = {"cert_file": "/etc/ssl/certs/postfix-test.pem", "key_file": "/etc/ssl/private/postfix-test.key"}
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    address = mail_lab.host("postfix-1").address
    handshake = sh(mail_lab, "postfix-1", f"openssl s_client -starttls smtp -connect {address}:25 -brief </dev/null 2>&1 || true")
    # OpenSSL 3.2 and later (Debian 13) print "CN=name", older ones "CN = name".
    assert "Protocol version: TLSv1.3" in handshake and re.search(r"CN ?= ?postfix-1[.]example[.]net", handshake)
    converge(mail_lab, tmp_path, {"postfix-1": base_vars(mail_lab, "postfix-1", sink.address)})


def test_hosts_without_a_mail_system_are_skipped(mail_lab: Lab, example_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    converge(mail_lab, tmp_path, {"postfix-2": instance_vars(mail_lab, sink.address)})
    # The example's web host (never given Postfix) beside the mail host, in one inventory.
    web = example_lab.host("example-3")
    mixed = tmp_path / "mixed.yml"
    mixed.write_text(
        f"all:\n  hosts:\n    example-3:\n      host: {web.address}\n      user: root\n"
        f"      ssh_key: {example_lab.key_file}\n      known_hosts: {example_lab.known_hosts}\n"
    )

    def mail(*args: str) -> subprocess.CompletedProcess[str]:
        inventory = ["-i", str(mail_lab.inventory_file), "-i", str(mixed), "--limit", "postfix-2:example-3"]
        return subprocess.run(["provision", "mail", *args, *inventory], capture_output=True, text=True, check=False, timeout=300)

    assert example_lab.exec("example-3", ["sh", "-c", "command -v postconf || echo none"])[1].strip() == "none"
    queue = mail("queue")
    assert queue.returncode == 0, queue.stdout + queue.stderr
    assert "example-3: skipped: no Postfix instance and no provision-mta here" in queue.stdout
    assert "failed" not in queue.stdout
    document = json.loads(mail("queue", "--json").stdout)["hosts"]
    assert (document["example-3"]["status"], document["postfix-2"]["status"]) == ("skipped", "ok")
    only_there = mail("flush", "--instance", "postfix-out")
    assert only_there.returncode == 0 and "example-3: skipped" in only_there.stdout
    nowhere = mail("queue", "--instance", "postfix-typo")
    assert nowhere.returncode == 1 and "no instance 'postfix-typo' on any of the 2 selected host(s)" in nowhere.stderr
    assert "postfix-2: skipped: no instance postfix-typo here (instances: postfix, postfix-out)" in nowhere.stdout


def test_an_interface_postfix_refuses_fails_with_postfix_s_reason(mail_lab: Lab, sink: SmtpSink, tmp_path: Path) -> None:
    host_vars = base_vars(mail_lab, "postfix-1", sink.address)
    converge(mail_lab, tmp_path, {"postfix-1": host_vars})
    before = sh(mail_lab, "postfix-1", "sha256sum /etc/postfix/main.cf")
    # An address of this test suite's own block that no interface has: the controller cannot know, the host refuses it.
    host_vars["postfix_inet_interfaces"] = [mail_lab.host("postfix-1").address, "127.87.9.9"]
    done = apply(mail_lab, tmp_path, {"postfix-1": host_vars})
    assert done.returncode == 1
    (error,) = json.loads(done.stdout)["hosts"]["postfix-1"]["errors"]
    lines = error.splitlines()
    assert lines[0].startswith("commit: handler 'restart postfix' failed (exit 1), previous files restored")
    assert "postfix: fatal: parameter inet_interfaces: no local interface found for 127.87.9.9" in lines[1:]
    assert not any("pf()" in line or "postfix_log" in line or "tail -c" in line for line in lines)  # not the shell that ran it
    # Only what the log gained during the handler: nothing from the converges before it.
    assert not any("daemon started" in line or "reload --" in line for line in lines), error
    assert sh(mail_lab, "postfix-1", "sha256sum /etc/postfix/main.cf") == before
    assert sh(mail_lab, "postfix-1", "postfix status >/dev/null 2>&1 && echo running").strip() == "running"
