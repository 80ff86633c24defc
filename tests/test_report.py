"""The report's pure parts: Postfix's view of its transports, reverse DNS
verdicts against a real DNS server on loopback, and the comparison of what
a host runs with what the inventory says."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from provision.agent.protocol import ReportAnswer, ReportInstance
from provision.cli.common import nameservers
from provision.errors import ProvisionError
from provision.report.dns_check import DnsChecker
from provision.report.gather import fill_from_answer
from provision.report.model import HostReport
from provision.report.output import to_html
from provision.report.postfix_config import Transport, transports
from provision.roles.compiler import CompiledHost
from provision_mta.nameserver import parse_nameserver
from tests.support.dns_server import DnsServer, SilentDnsServer

# As `postconf -M`, `postconf -Px` and `postconf -x ...` print them on Debian 12.
MASTER = """\
smtp       inet  n       -       y       -       -       smtpd
pickup     unix  n       -       y       60      1       pickup
smtp       unix  -       -       y       -       -       smtp
relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name
out1       unix  -       -       n       -       -       smtp -o smtp_bind_address=127.9.0.1 -o smtp_helo_name=out1.example.test
out2       unix  -       -       n       -       -       smtp -o smtp_bind_address=127.9.0.2
out6       unix  -       -       n       -       -       smtp -o smtp_bind_address6=::1
local      unix  -       n       n       -       -       local
"""
OVERRIDES = """\
relay/unix/syslog_name = postfix/relay
out1/unix/smtp_bind_address = 127.9.0.1
out1/unix/smtp_helo_name = out1.example.test
out2/unix/smtp_bind_address = 127.9.0.2
out6/unix/smtp_bind_address6 = ::1
"""
MAIN = "myhostname = mx.example.test\nsmtp_helo_name = mx.example.test\nsmtp_bind_address =\nsmtp_bind_address6 =\n"


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        pytest.param(
            MAIN,
            [
                Transport("out1", "127.9.0.1", "out1.example.test"),
                Transport("out2", "127.9.0.2", "mx.example.test"),
                Transport("out6", "::1", "mx.example.test"),
            ],
            id="unbound-services-left-out",
        ),
        pytest.param(
            MAIN.replace("smtp_bind_address =\n", "smtp_bind_address = 127.9.0.9\n"),
            [
                Transport("smtp", "127.9.0.9", "mx.example.test"),
                Transport("relay", "127.9.0.9", "mx.example.test"),
                Transport("out1", "127.9.0.1", "out1.example.test"),
                Transport("out2", "127.9.0.2", "mx.example.test"),
                Transport("out6", "127.9.0.9", "mx.example.test"),
            ],
            id="main-cf-address-inherited",
        ),
    ],
)
def test_transports_as_postfix_runs_them(main: str, expected: list[Transport]) -> None:
    assert transports(MASTER, OVERRIDES, main) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.53", ("127.0.0.53", 53)), ("127.1.2.3:5300", ("127.1.2.3", 5300)), ("[::1]:5300", ("::1", 5300)), ("::1", ("::1", 53))],
)
def test_nameserver_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example.net", "127.0.0.1:0", "127.0.0.1:http", "[::1]:99999"])
def test_bad_nameserver_is_a_clear_error(text: str) -> None:
    # The MTA's own error, translated at the CLI's boundary into the one-line kind.
    with pytest.raises(ProvisionError, match="--dns-server"):
        nameservers((text,))


DNS_ADDRESS = "127.53.77.1"
DNS_PORT = 5353
FORWARD = {
    "good.example.test": "127.9.0.1",
    "helo.example.test": "127.9.0.3",
    "other.example.test": "127.99.0.1",
}
REVERSE = {"127.9.0.1": "good.example.test", "127.9.0.2": "other.example.test", "127.9.0.3": "helo.example.test"}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(DNS_ADDRESS, DNS_PORT) as server:
        server.serve(FORWARD, REVERSE)
        yield server


@pytest.fixture
def checker(dns_server: DnsServer) -> DnsChecker:
    return DnsChecker([(dns_server.address, dns_server.port)], timeout=2.0)


@pytest.mark.parametrize(
    ("address", "helo", "outcome", "ptr"),
    [
        ("127.9.0.1", "good.example.test", "ok", ["good.example.test"]),
        ("127.9.0.1", "GOOD.example.test.", "ok", ["good.example.test"]),
        ("127.9.0.2", "other.example.test", "PTR not confirmed", ["other.example.test"]),
        ("127.9.0.3", "mx.example.test", "HELO differs from PTR", ["helo.example.test"]),
        ("127.9.0.4", "mx.example.test", "no PTR", []),
    ],
)
def test_reverse_dns_verdicts(checker: DnsChecker, address: str, helo: str, outcome: str, ptr: list[str]) -> None:
    result = checker.check(address, helo)
    assert (result.outcome, result.ptr_names) == (outcome, ptr)


def test_unanswered_resolver_is_a_dns_failure_not_a_missing_ptr() -> None:
    silent = DnsChecker([("127.53.77.99", 5399)], timeout=0.3)
    assert silent.check("127.9.0.1", "good.example.test").outcome == "DNS lookup failed"


def test_a_silent_resolver_costs_one_timeout_for_all_addresses_and_is_named() -> None:
    import threading
    import time

    arrived: list[float] = []
    with SilentDnsServer("127.84.0.98", 5398) as silent:

        def listen() -> None:
            silent.socket.settimeout(0.2)
            while len(arrived) < 6:
                try:
                    silent.socket.recv(512)
                except OSError:
                    continue
                arrived.append(time.monotonic())

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        checker = DnsChecker([("127.84.0.98", 5398)], timeout=1.0)
        pairs = [(f"127.84.9.{n}", f"out{n}.example.test") for n in range(1, 7)]
        started = time.monotonic()
        results = checker.check_all(pairs)
        listener.join(2)
    assert [r.address for r in results] == [address for address, _ in pairs]
    assert {(r.outcome, r.detail) for r in results} == {("DNS lookup failed", "no answer from 127.84.0.98:5398 within 1 s")}
    # Every address was asked before the first lookup's time was up (one after another, the
    # second would be asked only then): the lookups ran at once, within one timeout.
    assert len(arrived) == 6 and max(arrived) < started + checker.timeout


def test_every_silent_resolver_is_named() -> None:
    with SilentDnsServer("127.84.0.97", 5397), SilentDnsServer("127.84.0.96", 5396):
        checker = DnsChecker([("127.84.0.97", 5397), ("127.84.0.96", 5396)], timeout=1.0)
        checker.resolver.timeout = 0.3  # per server, so that both are asked within the second
        (failed,) = checker.check_all([("127.9.0.1", "good.example.test")])
    assert failed.detail == "no answer from 127.84.0.97:5397, 127.84.0.96:5396 within 1 s"


@pytest.fixture
def compiled_mail_host(make_tree: Callable[[dict[str, str]], Path]) -> CompiledHost:
    from provision.roles.compiler import Project

    variables = {
        "postfix_myhostname": "mx.example.test",
        "postfix_transports": [
            {"name": "out1", "bind_address": "127.9.0.1", "helo_name": "good.example.test"},
            {"name": "out2", "bind_address": "127.9.0.2"},
            {"name": "gone", "bind_address": "127.9.0.5"},
        ],
    }
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1:\n",
            "host_vars/mx1.yml": yaml.safe_dump(variables),
            "site.yml": "- hosts: all\n  roles: [postfix]\n",
        }
    )
    return Project.load(folder).compile("mx1")


def answer(master: str = MASTER, overrides: str = OVERRIDES, certificates: dict[str, str | None] | None = None) -> ReportAnswer:
    instance: ReportInstance = {
        "name": "postfix",
        "config_directory": "/etc/postfix",
        "master": master,
        "overrides": overrides,
        "main": MAIN,
    }
    instance["queue"] = {"count": 7, "queues": {"deferred": 3}}
    return {"ok": True, "instances": [instance], "certificates": certificates or {}}


def test_host_and_inventory_disagreements_are_flagged(compiled_mail_host: CompiledHost, checker: DnsChecker) -> None:
    report = HostReport("mx1")
    running = answer(MASTER.replace("out2 ", "out2b"), OVERRIDES + "out1/unix/smtp_bind_address = 127.9.0.3\n")
    fill_from_answer(report, running, compiled_mail_host, checker, 30)
    rows = {row.service: row for row in report.transports}
    assert rows["out1"].address == "127.9.0.3" and rows["out1"].inventory == "the inventory binds 127.9.0.1"
    assert rows["gone"].inventory == "in the inventory, not running on the host"
    assert rows["out6"].inventory == "running on the host, not in the inventory"
    assert report.instances[0].queue == 7 and report.instances[0].deferred == 3


def self_signed_pem(days: int) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.test")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_certificates_near_expiry_missing_or_garbled_are_problems(compiled_mail_host: CompiledHost, checker: DnsChecker) -> None:
    certificates: dict[str, str | None] = {
        "/etc/ssl/certs/fresh.pem": self_signed_pem(days=200),
        "/etc/ssl/certs/soon.pem": self_signed_pem(days=10),
        "/etc/ssl/certs/gone.pem": None,
        "/etc/ssl/certs/junk.pem": "",
    }
    report = HostReport("mx1")
    fill_from_answer(report, answer(certificates=certificates), compiled_mail_host, checker, 30)
    problems = {c.path.rsplit("/", 1)[1]: c.problem for c in report.certificates}
    assert problems["fresh.pem"] == ""
    assert problems["soon.pem"].startswith("expires in 9 days") or problems["soon.pem"].startswith("expires in 10 days")
    assert problems["gone.pem"] == "missing on the host" and problems["junk.pem"] == "not a PEM certificate"


def test_html_escapes_what_hosts_and_dns_say(compiled_mail_host: CompiledHost, checker: DnsChecker) -> None:
    from provision.report.model import Report

    report = HostReport("mx1")
    fill_from_answer(
        report, answer(overrides=OVERRIDES.replace("out1.example.test", "<script>x</script>")), compiled_mail_host, checker, 30
    )
    page = to_html(Report(dt.datetime.now(dt.UTC).isoformat(), "test", [report]))
    assert "<script>" not in page and "&lt;script&gt;" in page


MANY_NAMES = [f"ptr{number}.reverse-zone.example.test" for number in range(50)]


@pytest.fixture(scope="module")
def hostile_dns() -> Iterator[DnsServer]:
    with DnsServer("127.84.0.53", 5354) as server:
        # Names with rich's markup in them: x[/].test (A and PTR) and a[red]b[/].test (PTR only).
        server.serve({}, {"127.84.9.1": MANY_NAMES, "127.84.9.3": "a[red]b[/].test"}, hosts={"x[/].test": "127.84.9.2"})
        yield server


def test_terminal_report_shows_dns_names_as_they_are_and_keeps_every_column(hostile_dns: DnsServer) -> None:
    import io

    from rich.console import Console

    from provision.report.model import Report, TransportReport
    from provision.report.output import print_report

    checker = DnsChecker([(hostile_dns.address, hostile_dns.port)], timeout=2.0)
    rows = []
    transports = (("out1", "127.84.9.1", "out1.example.test"), ("out2", "127.84.9.2", "a[bold]b[/].test"), ("out3", "127.84.9.3", "o.test"))
    for service, address, helo in transports:
        checked = checker.check(address, helo)
        rows.append(
            TransportReport(
                "postfix", service, address, helo, checked.ptr_names, bool(checked.confirmed_names), False, checked.outcome, checked.detail
            )
        )
    assert len(rows[0].ptr_names) == 50 and rows[1].outcome == "HELO differs from PTR" and rows[2].ptr_names == ["a[red]b[/].test"]
    host = HostReport("mx-with-a-long-name.example.test", transports=rows, drift_known=True)
    console = Console(width=80, file=io.StringIO(), record=True)
    print_report(console, Report("now", "test", [host]))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    header = next(line for line in text.splitlines() if line.startswith("host "))
    assert header.split() == ["host", "instance", "transport", "address", "HELO", "PTR", "FCrDNS", "verdict"]
    flat = "".join(text.split())  # cells wrap; their text is all there
    assert "x[/].test" in flat and "a[red]b[/].test" in flat and "a[bold]b[/].test" in flat and "(+47more)" in flat
    table = text.split("\nhosts")[0].splitlines()
    verdicts = [line[header.index("verdict") :] for line in table]
    assert sum(cell.startswith("PTR not") for cell in verdicts) == 2 and sum(cell.startswith("HELO ") for cell in verdicts) == 1
    assert flat.count("PTRnotconfirmed(") == 2  # and in the problem lines
    assert "HELOdiffersfromPTR(HELOa[bold]b[/].test,PTRx[/].test)" in flat and "a[red]b[/].testresolvestonothing" in flat
    assert flat.count("mx-with-a-long-name.example.test") >= 3  # both rows, the hosts table and the problem lines


@pytest.mark.parametrize(
    ("natural", "minimum", "available", "expected"),
    [
        ([5, 5, 5], [3, 3, 3], 20, [5, 5, 5]),
        ([10, 40, 5], [4, 4, 4], 30, [10, 15, 5]),
        ([30, 30], [8, 8], 20, [10, 10]),
        ([30, 30], [12, 12], 20, [12, 12]),  # the minimums win over the terminal
        ([2, 3], [6, 6], 40, [6, 6]),
    ],
)
def test_fit_widths(natural: list[int], minimum: list[int], available: int, expected: list[int]) -> None:
    from provision.views.tables import fit_widths

    assert fit_widths(natural, minimum, available) == expected


def test_a_stopped_postfix_is_a_problem_of_every_transport_it_runs(compiled_mail_host: CompiledHost, checker: DnsChecker) -> None:
    stopped = answer()
    stopped["instances"][0]["running"] = False
    report = HostReport("mx1")
    fill_from_answer(report, stopped, compiled_mail_host, checker, 30)
    rows = {row.service: row for row in report.transports}
    assert rows["out1"].problems[0] == "cannot send: Postfix is not running"
    assert all("cannot send: Postfix is not running" in row.problems for row in report.transports)
    assert report.mta == "not running: postfix" and report.instances[0].problem == "not running"
    assert "postfix: not running" in report.problems

    running = answer()
    running["instances"][0]["running"] = True
    report = HostReport("mx1")
    fill_from_answer(report, running, compiled_mail_host, checker, 30)
    assert report.mta == "running" and not any(row.mta for row in report.transports)
    assert not any(problem.startswith("cannot send") for row in report.transports for problem in row.problems)


def test_postfix_not_installed_is_a_problem_of_the_host_and_its_transports(compiled_mail_host: CompiledHost, checker: DnsChecker) -> None:
    report = HostReport("mx1")
    fill_from_answer(report, {"ok": True, "instances": [], "certificates": {}}, compiled_mail_host, checker, 30)
    assert report.mta == "not installed"
    assert "Postfix is not installed, and the inventory applies the postfix role" in report.problems
    assert {row.service for row in report.transports} == {"out1", "out2", "gone"}
    assert all(row.problems[0] == "cannot send: Postfix is not installed" for row in report.transports)


def test_an_instance_the_inventory_disables_may_be_stopped(make_tree: Callable[[dict[str, str]], Path], checker: DnsChecker) -> None:
    from provision.roles.compiler import Project

    variables = {
        "postfix_instances": [
            {"name": "postfix-off", "enabled": False, "inet_interfaces": ["127.9.0.8"], "transports": []},
            {"name": "postfix-on", "inet_interfaces": ["127.9.0.9"], "transports": [{"name": "b1", "bind_address": "127.9.0.1"}]},
        ]
    }
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1:\n",
            "host_vars/mx1.yml": yaml.safe_dump(variables),
            "site.yml": "- hosts: all\n  roles: [postfix]\n",
        }
    )
    compiled = Project.load(folder).compile("mx1")
    primary = answer(MASTER, "")["instances"][0] | {"running": True}
    off: ReportInstance = {
        "name": "postfix-off",
        "config_directory": "/etc/postfix-off",
        "master": "",
        "overrides": "",
        "main": MAIN,
        "running": False,
        "enabled": False,
    }
    on: ReportInstance = {
        "name": "postfix-on",
        "config_directory": "/etc/postfix-on",
        "master": "b1 unix - - n - - smtp -o smtp_bind_address=127.9.0.1\n",
        "overrides": "b1/unix/smtp_bind_address = 127.9.0.1\n",
        "main": MAIN,
        "running": False,
        "enabled": True,
    }
    report = HostReport("mx1")
    fill_from_answer(report, {"ok": True, "instances": [primary, off, on], "certificates": {}}, compiled, checker, 30)
    assert report.mta == "not running: postfix-on"
    assert {i.name: i.problem for i in report.instances} == {"postfix": "", "postfix-off": "", "postfix-on": "not running"}
    (b1,) = [row for row in report.transports if row.service == "b1"]
    assert b1.problems[0] == "cannot send: postfix-on is not running"
