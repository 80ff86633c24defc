"""The report's sending-domain checks against a real DNS server on loopback
(dnsmasq): SPF authorization through include/a/mx/ip4 and the lookup limit,
DKIM records against the host's key, DMARC, MTA-STS and TLS-RPT; and what
the terminal gets of hostile records (the report, onboarding's checklist)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console

from provision.report.sending_domains import DomainChecker, DomainKey, DomainReport, Sender, evaluate, shared_selectors
from provision.roles.dkim import txt_value
from provision_mta.nameserver import resolver_for
from tests.support.dns_server import DnsServer

DNS = "127.83.0.54"
A1, A2, A3 = "127.83.1.1", "127.83.1.2", "127.83.1.3"


def public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(DNS) as server:
        yield server


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return public_pem(), public_pem()


def checker() -> DomainChecker:
    return DomainChecker(resolver_for([(DNS, 53)]), 2.0)


SENDERS = [Sender("mx1", "out1", A1), Sender("mx1", "out2", A2), Sender("mx1", "out3", A3)]


def test_a_broken_zone_says_what_to_publish(dns: DnsServer, keys: tuple[str, str]) -> None:
    host_key, other_key = keys
    dns.serve(
        {},
        {},
        hosts={"relay.example.test": A2},
        txt={
            # out1 through include, out2 through a:, out3 nowhere; -all
            "example.test": "v=spf1 include:_spf.example.test a:relay.example.test -all",
            "_spf.example.test": f"v=spf1 ip4:{A1}/32 ~all",
            "s1._domainkey.example.test": txt_value(other_key),
            "_mta-sts.example.test": "v=STSv1; id=",
            "_smtp._tls.example.test": "v=TLSRPTv1; rua=mailto:tls@example.test",
        },
    )
    report = checker().check("example.test", SENDERS, [DomainKey("mx1", "s1", "rsa", host_key)])
    results = {row.transport: (row.result, row.via) for row in report.addresses}
    assert results["out1"] == ("pass", f"include:_spf.example.test (ip4:{A1}/32)")
    assert results["out2"] == ("pass", "a:relay.example.test")
    assert results["out3"] == ("fail", "all")
    assert report.spf_lookups == 2
    problems = "\n".join(report.problems)
    fixed = f"v=spf1 include:_spf.example.test a:relay.example.test ip4:{A3} -all"
    assert f'SPF: not authorized: {A3} (mx1/out3: fail); publish at example.test: "{fixed}"' in problems
    assert (
        f'DKIM s1: the published key is not the one mx1 signs with; publish TXT at s1._domainkey.example.test: "{txt_value(host_key)}"'
        in problems
    )
    assert 'DMARC: no record; publish TXT at _dmarc.example.test: "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test"' in problems
    assert "MTA-STS:" in problems and report.tls_rpt_record.startswith("v=TLSRPTv1")
    assert len(report.problems) == 4


def test_the_fixed_zone_is_green(dns: DnsServer, keys: tuple[str, str]) -> None:
    host_key, _ = keys
    dns.serve(
        {},
        {},
        txt={
            "example.test": f"v=spf1 ip4:{A1} ip4:{A2} ip4:{A3} -all",
            "s1._domainkey.example.test": txt_value(host_key),
            "_dmarc.example.test": "v=DMARC1; p=quarantine; rua=mailto:d@example.test",
        },
    )
    report = checker().check("example.test", SENDERS, [DomainKey("mx1", "s1", "rsa", host_key)])
    assert report.problems == [] and report.dmarc_policy == "quarantine"
    assert [s.outcome for s in report.selectors] == ["ok"] and report.spf_lookups == 0


def test_no_spf_and_too_many_lookups(dns: DnsServer) -> None:
    chain = {f"l{i}.example.test": f"v=spf1 include:l{i + 1}.example.test ~all" for i in range(11)}
    chain["l11.example.test"] = f"v=spf1 ip4:{A1} ~all"
    dns.serve({}, {}, txt={"many.example.test": "v=spf1 include:l0.example.test -all", **chain})
    none = checker().check("none.example.test", SENDERS[:1], [])
    assert none.problems[0] == f'SPF: no record; publish TXT at none.example.test: "v=spf1 ip4:{A1} ~all"'
    many = checker().check("many.example.test", SENDERS[:1], [])
    assert many.spf_lookups == 11 and [a.result for a in many.addresses] == ["permerror"]
    assert many.problems[0].startswith("SPF: Parsing the SPF record requires 11/10 maximum DNS lookups")


def test_evaluation_order_and_redirect() -> None:
    parsed = {
        "mechanisms": [
            {"mechanism": "ip4", "value": "127.83.1.0/24", "action": "softfail"},
            {"mechanism": "ip4", "value": A1, "action": "pass"},
        ],
        "redirect": None,
        "all": "fail",
    }
    assert evaluate(parsed, A1) == ("softfail", "ip4:127.83.1.0/24")  # the first match decides
    redirected: dict[str, Any] = {
        "mechanisms": [],
        "redirect": {"domain": "other.test", "parsed": {"mechanisms": [], "all": "neutral"}},
        "all": None,
    }
    assert evaluate(redirected, A1) == ("neutral", "redirect=other.test (all)")
    assert evaluate({"mechanisms": [{"mechanism": "exists", "value": "%{i}.x.test"}], "all": "fail"}, A1)[0] == "unknown"


def test_one_selector_on_two_hosts_is_a_problem() -> None:
    domains: dict[str, tuple[list[Sender], list[DomainKey]]] = {
        "example.test": ([], [DomainKey("mx1", "s1", "rsa", None), DomainKey("mx2", "s1", "rsa", None)])
    }
    assert shared_selectors(domains) == {
        "example.test": ["DKIM s1: used by mx1, mx2, but each host makes its own key: give each host its own selector"]
    }


# TXT records as a stranger may publish them (an include: of someone else's domain):
# rich markup and terminal escapes (clear the screen, retitle the window, blink).
HOSTILE_TXT = {
    "hostile.test": "v=spf1 ip4:127.89.1.1 [/] \x1b[2J\x1b]0;pwned -all",
    "s1._domainkey.hostile.test": "v=DKIM1; k=rsa; p=[red]AAAA[/]",
    "_dmarc.hostile.test": "v=DMARC1; p=[bold]x[/]\x1b[5m; rua=mailto:a@hostile.test",
}
RAW_ESCAPES = ("\x1b[2J", "\x1b]0;", "\x1b[5m")


@pytest.fixture(scope="module")
def hostile_report(keys: tuple[str, str]) -> Iterator[DomainReport]:
    # Its own server (this branch's block, 127.89.0.0/16): the module's other zone changes each test.
    with DnsServer("127.89.0.55") as server:
        server.serve({}, {}, txt=HOSTILE_TXT)
        yield DomainChecker(resolver_for([("127.89.0.55", 53)]), 2.0).check(
            "hostile.test", [Sender("mx1", "out1", A1)], [DomainKey("mx1", "s1", "rsa", keys[0])]
        )


def printed(write: Callable[[Console], None]) -> tuple[str, str]:
    """(what a terminal receives, the plain text) of what ``write`` prints at 80 columns."""
    received = io.StringIO()
    console = Console(width=80, file=received, force_terminal=True, record=True)
    write(console)
    raw = received.getvalue()
    return raw, console.export_text()


def test_the_report_prints_dns_text_as_it_is_and_never_a_terminal_escape(hostile_report: DomainReport) -> None:
    from provision.report.model import HostReport, Report
    from provision.report.output import print_report

    assert "\x1b[2J" in hostile_report.spf_record  # DNS served the escapes
    raw, text = printed(
        lambda console: print_report(console, Report("now", "test", [HostReport("mx1", drift_known=True)], [hostile_report]))
    )
    assert not [escape for escape in RAW_ESCAPES if escape in raw]
    flat = "".join(text.split())
    # Markup is text, control characters are shown as \xNN.
    assert "ip4:127.89.1.1➞[/]\\x1b[2J\\x1b]0;pwned-all" in flat and "p=[bold]x[/]➞\\x1b[5m" in flat
    # The domains table keeps every column at 80 columns; a record that does not parse says so.
    header = next(line for line in text.splitlines() if line.startswith("domain "))
    assert header.split() == ["domain", "SPF", "DKIM", "DMARC", "MTA-STS", "TLS-RPT", "problems"]
    table = text[text.index(header) : text.index("\nhosts")].splitlines()
    assert all(len(line) <= 80 for line in table) and "hostile.test" in table[1] and "does not parse" in table[1]


def test_the_onboarding_checklist_prints_dns_text_as_it_is(hostile_report: DomainReport, tmp_path: Path) -> None:
    from provision.onboard.inventory_edit import InventoryEdit
    from provision.onboard.run import _step_checklist
    from provision.report.model import HostReport, Report

    edit = InventoryEdit(tmp_path / "hosts.yml", "", "", tmp_path / "host_vars" / "mx1.yml", None, "")
    report = Report("now", "test", [HostReport("mx1", drift_known=True)], [hostile_report])
    raw, text = printed(lambda console: _step_checklist(edit, [], report, console))
    assert not [escape for escape in RAW_ESCAPES if escape in raw]
    flat = "".join(text.split())
    assert "hostile.test:SPF:therecordofhostile.testdoesnotparse" in flat and "[/]\\x1b[2J\\x1b]0;pwned" in flat
    assert "DMARC:" in flat and "p=[bold]x[/]➞\\x1b[5m" in flat
