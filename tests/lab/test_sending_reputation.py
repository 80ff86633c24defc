"""Sending reputation on a real Debian host (issue 20): DKIM, SPF, DMARC, warm-up, addresses.

One lab host runs the addresses, dkim and postfix roles: three transports,
each bound to its own loopback address, relaying to a sink on loopback;
opendkim signs for two domains (RSA and Ed25519 keys made on the host). A
dnsmasq on loopback serves the zone: the sink verifies every signature with
dkimpy against the keys published there, the report flags a broken zone and
goes green once it is fixed, the warm-up weights of three dates give the
expected shares of 300 messages, and an address taken off the host shows.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from provision.lab.lab import Lab
from provision_mta.nameserver import resolver_for
from tests.support.dns_server import DnsServer
from tests.support.lab import converged, module_lab, run_roles
from tests.support.smtp_sink import Received, SmtpSink

pytestmark = pytest.mark.lab

HOST = "rep-1"
# This branch's own loopback block (127.83.0.0/16): DNS, sink, and an address the role adds.
DNS_ADDRESS, SINK_ADDRESS, SINK_PORT = "127.83.0.53", "127.83.0.25", 2525
ROLE_ADDRESS, UNDECLARED_ADDRESS = "127.83.3.1", "127.83.3.2"
ROLES = ["addresses", "dkim", "postfix"]
KEYS = [
    {"domain": "example.test", "selector": "rep1-rsa"},
    {"domain": "example.test", "selector": "rep1-ed", "algorithm": "ed25519"},
    {"domain": "news.test", "selector": "rep1-news"},
]

rep_lab = module_lab("rep", 1)


@pytest.fixture(scope="module")
def dns_server(rep_lab: Lab) -> Iterator[DnsServer]:
    with DnsServer(DNS_ADDRESS, zones=("test", "127.in-addr.arpa")) as server:
        yield server


@pytest.fixture(scope="module")
def sink(rep_lab: Lab) -> Iterator[SmtpSink]:
    with SmtpSink(SINK_ADDRESS, SINK_PORT) as running:
        yield running


def host_vars(lab: Lab, **more: Any) -> dict[str, Any]:
    host = lab.host(HOST)
    out = host.extra_addresses[:3]
    return {
        "postfix_myhostname": "rep-1.example.test",
        "postfix_inet_interfaces": [host.address],
        "postfix_relayhost": f"[{SINK_ADDRESS}]:{SINK_PORT}",
        "postfix_maillog_file": "/var/log/postfix.log",
        "postfix_transports": [
            {"name": f"out{i}", "bind_address": address, "helo_name": f"out{i}.example.test", "weight": 4}
            for i, address in enumerate(out, start=1)
        ],
        "postfix_transport_selection": "random",
        "postfix_sender_transports": {f"pinned-out{i}@example.test": f"out{i}" for i in (1, 2, 3)} | {"pinned@news.test": "out1"},
        "dkim_keys": KEYS,
        # Each lab host has its own address: the milter must not share 127.0.0.1:8891 with other labs.
        "dkim_address": host.address,
        "addresses_interface": "lo",
        **more,
    }


@pytest.fixture(scope="module")
def inventory(rep_lab: Lab, tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("rep") / "inventory"
    folder.mkdir()
    first = converged(run_roles(rep_lab, folder, ROLES, {HOST: host_vars(rep_lab)}, fresh=False), HOST)
    assert first["status"] == "changed"
    yield folder
    subprocess.run(["ip", "addr", "del", f"{ROLE_ADDRESS}/32", "dev", "lo"], capture_output=True, check=False)


def published_key(inventory: Path, key: dict[str, str]) -> str:
    """The TXT value of a key, as the controller wrote it from the host's public half."""
    line = (inventory / "dkim" / HOST / f"{key['selector']}._domainkey.{key['domain']}.txt").read_text()
    inside = line[line.index("(") + 1 : line.rindex(")")].strip()
    return "".join(inside.strip('"').split('" "'))


def zone(lab: Lab, inventory: Path, fixed: bool) -> dict[str, Any]:
    out1, out2, out3 = lab.host(HOST).extra_addresses[:3]
    keys = {f"{k['selector']}._domainkey.{k['domain']}": published_key(inventory, k) for k in KEYS}
    txt: dict[str, str | list[str]] = {
        "example.test": f"v=spf1 ip4:{out1} ip4:{out2} ip4:{out3} -all",
        "news.test": f"v=spf1 ip4:{out1} ip4:{out2} ip4:{out3} ~all",
        "_dmarc.example.test": "v=DMARC1; p=reject; rua=mailto:dmarc@example.test",
        "_dmarc.news.test": "v=DMARC1; p=quarantine",
        **keys,
    }
    if not fixed:
        txt["example.test"] = f"v=spf1 ip4:{out1} ip4:{out2} -all"  # out3 not authorized
        del txt["_dmarc.news.test"]  # no DMARC
        txt["rep1-rsa._domainkey.example.test"] = keys["rep1-news._domainkey.news.test"]  # another key
    hosts = {f"out{i}.example.test": address for i, address in enumerate((out1, out2, out3), start=1)}
    return {"forward": {}, "reverse": {}, "hosts": hosts, "txt": txt}


def sh(lab: Lab, command: str) -> str:
    code, output = lab.exec(HOST, ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def send(lab: Lab, sender: str, count: int = 1, tag: str = "") -> None:
    """Submit on the host with Postfix's sendmail; ``count`` > 1 numbers the sender (sender+N@domain)."""
    local, domain = sender.split("@")
    script = (
        f'for i in $(seq 1 {count}); do s="{local}"; [ {count} -gt 1 ] && s="{local}+$i"; '
        f"printf 'From: %s@{domain}\\nTo: r@sink.test\\nSubject: {tag} %s\\nMessage-ID: <{tag}.%s@{domain}>\\n\\nhello\\n' "
        f'"$s" "$i" "$i" | /usr/sbin/sendmail -f "$s@{domain}" r@sink.test; done'
    )
    sh(lab, script)


def verify_all(message: bytes) -> list[tuple[str, str, bool]]:
    """(d=, a=, verified) for every DKIM-Signature, against the lab's DNS server."""
    resolver = resolver_for([(DNS_ADDRESS, 53)])

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(next(iter(answer)).strings)

    checker = dkim.DKIM(message)
    count = message.count(b"DKIM-Signature:")
    found = []
    for index in range(count):
        verified = checker.verify(idx=index, dnsfunc=lookup)
        found.append((checker.domain.decode(), checker.signature_fields[b"a"].decode(), bool(verified)))
    return found


def arrived(lab: Lab, sink: SmtpSink, tag: str, count: int, timeout: float = 120.0) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sink.messages if m.subject.startswith(tag + " ")]
        if len(found) >= count:
            return found
        time.sleep(0.3)
    log = lab.exec(HOST, ["sh", "-c", "tail -n 40 /var/log/postfix.log; postqueue -p | tail -n 20"])[1]
    raise AssertionError(f"{len([m for m in sink.messages if m.subject.startswith(tag)])} of {count} messages {tag} arrived:\n{log}")


def report(lab: Lab, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["provision", "report", "-i", str(inventory), "-i", str(lab.inventory_file), "--dns-server", f"{DNS_ADDRESS}:53", *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_keys_are_made_on_the_host_and_each_transport_sends_signed_mail(
    rep_lab: Lab, inventory: Path, dns_server: DnsServer, sink: SmtpSink
) -> None:
    for key in KEYS:
        path = f"/etc/opendkim/keys/{key['domain']}/{key['selector']}.private"
        assert sh(rep_lab, f"stat -c '%a %U' {path}").split() == ["600", "opendkim"]
    assert "BEGIN PRIVATE KEY" not in "".join(p.read_text() for p in (inventory / "dkim" / HOST).iterdir())
    dns_server.serve(**zone(rep_lab, inventory, fixed=True))

    tag = f"signed-{uuid.uuid4().hex[:6]}"
    for i in (1, 2, 3):
        send(rep_lab, f"pinned-out{i}@example.test", tag=tag)
    send(rep_lab, "pinned@news.test", tag=tag)
    messages = arrived(rep_lab, sink, tag, 4)
    addresses = rep_lab.host(HOST).extra_addresses[:3]
    by_sender = {m.sender: m for m in messages}
    for i, address in enumerate(addresses, start=1):
        message = by_sender[f"pinned-out{i}@example.test"]
        assert message.peer == address and message.helo == f"out{i}.example.test"
        # Both keys of example.test sign (RFC 8463 dual signing), each verified against DNS.
        assert sorted(verify_all(message.content)) == [("example.test", "ed25519-sha256", True), ("example.test", "rsa-sha256", True)]
    assert verify_all(by_sender["pinned@news.test"].content) == [("news.test", "rsa-sha256", True)]

    again = converged(run_roles(rep_lab, inventory, ROLES, {HOST: host_vars(rep_lab)}, fresh=False), HOST)
    assert again["status"] == "ok", json.dumps(again)


def test_report_flags_the_broken_zone_then_goes_green(rep_lab: Lab, inventory: Path, dns_server: DnsServer, tmp_path: Path) -> None:
    out3 = rep_lab.host(HOST).extra_addresses[2]
    dns_server.serve(**zone(rep_lab, inventory, fixed=False))
    done = report(rep_lab, inventory, "--json", "--html", str(tmp_path / "report.html"))
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    domains = {d["domain"]: d for d in document["domains"]}
    assert set(domains) == {"example.test", "news.test"}, done.stdout
    example, news = domains["example.test"], domains["news.test"]
    assert {a["transport"]: a["result"] for a in example["addresses"]} == {"out1": "pass", "out2": "pass", "out3": "fail"}
    rsa_record = published_key(inventory, KEYS[0])
    assert example["problems"] == [
        f"SPF: not authorized: {out3} ({HOST}/out3: fail); publish at example.test: "
        f'"v=spf1 ip4:{rep_lab.host(HOST).extra_addresses[0]} ip4:{rep_lab.host(HOST).extra_addresses[1]} ip4:{out3} -all"',
        f"DKIM rep1-rsa: the published key is not the one {HOST} signs with; "
        f'publish TXT at rep1-rsa._domainkey.example.test: "{rsa_record}"',
    ]
    assert example["dmarc_policy"] == "reject"
    assert news["problems"] == [
        'DMARC: no record; publish TXT at _dmarc.news.test: "v=DMARC1; p=none; rua=mailto:dmarc-reports@news.test" '
        "(then tighten p= to quarantine or reject)"
    ]
    (host,) = document["hosts"]
    assert host["problems"] == [] and all(t["configured"] for t in host["transports"])
    html = (tmp_path / "report.html").read_text()
    assert 'id="domain-example.test"' in html and 'id="domain-news.test"' in html and rsa_record in html

    dns_server.serve(**zone(rep_lab, inventory, fixed=True))
    green = report(rep_lab, inventory, "--json")
    assert green.returncode == 0, green.stdout
    assert json.loads(green.stdout)["summary"]["domains_ok"] == 2


def test_an_address_taken_off_the_host_is_a_problem(rep_lab: Lab, inventory: Path, dns_server: DnsServer) -> None:
    dns_server.serve(**zone(rep_lab, inventory, fixed=True))
    out2 = rep_lab.host(HOST).extra_addresses[1]
    subprocess.run(["ip", "addr", "del", f"{out2}/32", "dev", "lo"], check=True)
    try:
        done = report(rep_lab, inventory, "--json")
    finally:
        subprocess.run(["ip", "addr", "add", f"{out2}/32", "dev", "lo"], check=True)
    assert done.returncode == 2
    (host,) = json.loads(done.stdout)["hosts"]
    rows = {t["service"]: t for t in host["transports"]}
    assert rows["out2"]["configured"] is False and rows["out1"]["configured"] is True
    assert host["problems"] == [f"postfix/out2 {out2}: the address is not configured on the host (ip -o addr): the transport cannot send"]


def test_the_addresses_role_adds_an_address_and_refuses_an_undeclared_one(rep_lab: Lab, inventory: Path) -> None:
    declared = host_vars(rep_lab, addresses_extra=[{"address": ROLE_ADDRESS}])
    declared["postfix_transports"] = [*declared["postfix_transports"], {"name": "out4", "bind_address": ROLE_ADDRESS}]
    result = converged(run_roles(rep_lab, inventory, ROLES, {HOST: declared}, fresh=False), HOST)
    assert "apply addresses" in result["handlers"]
    assert f" {ROLE_ADDRESS}/32 " in sh(rep_lab, "ip -o addr show dev lo")
    assert "iface lo inet static\n    address 127.83.3.1/32" in sh(rep_lab, "cat /etc/network/interfaces.d/provision-addresses")

    undeclared = dict(declared)
    undeclared["postfix_transports"] = [*declared["postfix_transports"], {"name": "out5", "bind_address": UNDECLARED_ADDRESS}]
    before = sh(rep_lab, "md5sum /etc/postfix/master.cf")
    refused = run_roles(rep_lab, inventory, ROLES, {HOST: undeclared}, fresh=False)
    assert refused.returncode == 1
    assert f"a transport binds {UNDECLARED_ADDRESS}, which the host does not have" in refused.stdout
    assert sh(rep_lab, "md5sum /etc/postfix/master.cf") == before

    removed = converged(run_roles(rep_lab, inventory, ROLES, {HOST: host_vars(rep_lab)}, fresh=False), HOST)
    assert "apply addresses" in removed["handlers"]
    assert f" {ROLE_ADDRESS}/32 " not in sh(rep_lab, "ip -o addr show dev lo")


def shares_within(counts: Counter[str], expected: dict[str, float], total: int) -> None:
    """Each transport's count within four standard deviations of its expected share."""
    for name, share in expected.items():
        spread = 4 * math.sqrt(total * share * (1 - share)) + 1
        assert abs(counts[name] - total * share) <= spread, (
            f"{name}: {counts[name]} of {total}, expected {total * share:.0f} ± {spread:.0f}"
        )


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        # out3 starts 2026-12-10 with weights [1, 2] on the scale of its weight 4.
        ("2026-12-09", {"out1": 1 / 2, "out2": 1 / 2, "out3": 0.0}),
        ("2026-12-10", {"out1": 4 / 9, "out2": 4 / 9, "out3": 1 / 9}),
        ("2026-12-12", {"out1": 1 / 3, "out2": 1 / 3, "out3": 1 / 3}),
    ],
)
def test_warmup_weights_give_the_expected_shares_of_300_messages(
    rep_lab: Lab, inventory: Path, dns_server: DnsServer, sink: SmtpSink, date: str, expected: dict[str, float]
) -> None:
    variables = host_vars(rep_lab, postfix_warmup_date=date)
    variables["postfix_transports"][2]["warmup"] = {"start": "2026-12-10", "weights": [1, 2]}
    # What a daily cron check sees before the apply: the step is due.
    checked = run_roles(rep_lab, inventory, ROLES, {HOST: variables}, command="check", fresh=False)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    reasons = {f["path"]: f["reasons"] for f in json.loads(checked.stdout)["hosts"][HOST]["files"]}
    assert "warm-up step due" in reasons["/etc/postfix/provision-warmup"], reasons
    converged(run_roles(rep_lab, inventory, ROLES, {HOST: variables}, fresh=False), HOST)
    tag = f"warm-{date}-{uuid.uuid4().hex[:4]}"
    send(rep_lab, "bulk@example.test", count=300, tag=tag)
    messages = arrived(rep_lab, sink, tag, 300, timeout=300)
    by_address = {address: f"out{i}" for i, address in enumerate(rep_lab.host(HOST).extra_addresses[:3], start=1)}
    counts = Counter(by_address[m.peer] for m in messages)
    print(f"warm-up {date}: {dict(sorted(counts.items()))} of 300, expected { ({k: round(300 * v) for k, v in expected.items()}) }")
    shares_within(counts, expected, 300)
    if expected["out3"] == 0:
        assert counts["out3"] == 0
