"""``provision report`` against a real Postfix host and a real DNS server.

One lab host runs Postfix with two transports in the primary instance and
one in a postmulti instance, each bound to its own loopback address. The
loopback DNS server gives one address a correct, forward-confirmed PTR
equal to the HELO, none to another, and to the third a PTR whose name
resolves elsewhere: the table, JSON and HTML must show exactly those three
outcomes and exit 2; once the zone is fixed, exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provision.lab.lab import Lab, address_block
from tests.support.dns_server import DnsServer
from tests.support.lab import NAMESPACE, converged, module_lab, run_roles

pytestmark = pytest.mark.lab

report_lab = module_lab("report", 2)
HOST = "report-1"
# In the inventory with the postfix role too, but never converged: Postfix is not installed there.
BARE = "report-2"


@pytest.fixture(scope="module")
def dns_server(report_lab: Lab) -> Iterator[DnsServer]:
    with DnsServer(f"{address_block(f'{NAMESPACE}/report')}.53") as server:
        yield server


@pytest.fixture(scope="module")
def inventory(report_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    host = report_lab.host(HOST)
    first, second, third = host.extra_addresses[:3]
    variables: dict[str, Any] = {
        "postfix_myhostname": "report-1.example.test",
        "postfix_inet_interfaces": [host.address],
        "postfix_transports": [
            {"name": "out1", "bind_address": first, "helo_name": "out1.example.test"},
            {"name": "out2", "bind_address": second, "helo_name": "out2.example.test"},
        ],
        "postfix_instances": [
            {
                "name": "postfix-bulk",
                "inet_interfaces": [third],
                "transports": [{"name": "bulk1", "bind_address": third, "helo_name": "bulk1.example.test"}],
            }
        ],
    }
    folder = tmp_path_factory.mktemp("report") / "inventory"
    folder.mkdir()
    # The site applies postfix to both hosts (BARE with the role's defaults); only HOST is converged.
    converged(run_roles(report_lab, folder, ["postfix"], {HOST: variables, BARE: {}}, fresh=False, limit=HOST), HOST)
    return folder


def zone(lab: Lab, fixed: bool) -> tuple[dict[str, str], dict[str, str]]:
    first, second, third = lab.host(HOST).extra_addresses[:3]
    forward = {"out1.example.test": first, "out2.example.test": second, "bulk1.example.test": third, "elsewhere.example.test": "127.99.9.9"}
    reverse = {first: "out1.example.test"}
    if fixed:
        reverse |= {second: "out2.example.test", third: "bulk1.example.test"}
    else:
        reverse |= {third: "elsewhere.example.test"}
    return forward, reverse


def report(lab: Lab, inventory: Path, dns: DnsServer, *extra: str, limit: str = HOST) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "provision",
            "report",
            "-i",
            str(inventory),
            "-i",
            str(lab.inventory_file),
            "--dns-server",
            f"{dns.address}:{dns.port}",
            "--limit",
            limit,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "220"},
    )


def outcomes(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    (host,) = document["hosts"]
    return {(row["instance"], row["service"]): row for row in host["transports"]}


def test_report_shows_each_reverse_dns_outcome_and_exits_2(report_lab: Lab, inventory: Path, dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.serve(*zone(report_lab, fixed=False))
    first, second, third = report_lab.host(HOST).extra_addresses[:3]

    done = report(report_lab, inventory, dns_server, "--json")
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    rows = outcomes(document)
    assert set(rows) == {("postfix", "out1"), ("postfix", "out2"), ("postfix-bulk", "bulk1")}
    good, missing, elsewhere = rows[("postfix", "out1")], rows[("postfix", "out2")], rows[("postfix-bulk", "bulk1")]
    assert (good["address"], good["outcome"], good["fcrdns"], good["helo_matches"], good["problems"]) == (
        first,
        "ok",
        True,
        True,
        [],
    )
    assert (missing["address"], missing["outcome"], missing["ptr_names"], missing["fcrdns"]) == (second, "no PTR", [], False)
    assert (elsewhere["address"], elsewhere["outcome"], elsewhere["ptr_names"]) == (third, "PTR not confirmed", ["elsewhere.example.test"])
    assert "127.99.9.9" in elsewhere["problems"][0]
    (host,) = document["hosts"]
    assert host["drift"] == [] and host["drift_known"] and host["status"] == "ok"
    assert {i["name"]: i["queue"] for i in host["instances"]} == {"postfix": 0, "postfix-bulk": 0}
    assert document["summary"]["transports_ok"] == 1 and document["summary"]["problems"] == 2

    table = report(report_lab, inventory, dns_server, "--html", str(tmp_path / "report.html"))
    assert table.returncode == 2
    lines = {row: next(line for line in table.stdout.splitlines() if f" {row} " in line) for row in ("out1", "out2", "bulk1")}
    assert "ok" in lines["out1"] and "no PTR" in lines["out2"] and "not confirmed" in lines["bulk1"]
    html = (tmp_path / "report.html").read_text()
    assert html.count('<tr class="problem"') == 2 and html.count('<tr class="ok" data-address') == 1
    assert f'<tr class="ok" data-address="{first}">' in html


def test_report_exits_0_once_the_zone_is_fixed(report_lab: Lab, inventory: Path, dns_server: DnsServer) -> None:
    dns_server.serve(*zone(report_lab, fixed=True))
    done = report(report_lab, inventory, dns_server, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = outcomes(json.loads(done.stdout))
    assert {key: row["outcome"] for key, row in rows.items()} == dict.fromkeys(rows, "ok")


def test_report_reads_the_host_and_flags_where_it_disagrees_with_the_inventory(
    report_lab: Lab, inventory: Path, dns_server: DnsServer
) -> None:
    dns_server.serve(*zone(report_lab, fixed=True))
    # Someone edits master.cf by hand: out2 now binds the first address.
    first, second, _ = report_lab.host(HOST).extra_addresses[:3]
    code, output = report_lab.exec(HOST, ["postconf", "-P", f"out2/unix/smtp_bind_address={first}"])
    assert code == 0, output
    try:
        done = report(report_lab, inventory, dns_server, "--json")
        assert done.returncode == 2
        (host,) = json.loads(done.stdout)["hosts"]
        row = outcomes({"hosts": [host]})[("postfix", "out2")]
        assert row["address"] == first and row["inventory"] == f"the inventory binds {second}"
        assert "/etc/postfix/master.cf" in host["drift"]
    finally:
        report_lab.exec(HOST, ["postconf", "-P", f"out2/unix/smtp_bind_address={second}"])


def test_hostile_ptr_names_print_as_they_are_in_80_columns(report_lab: Lab, inventory: Path, dns_server: DnsServer) -> None:
    first, second, third = report_lab.host(HOST).extra_addresses[:3]
    forward, _ = zone(report_lab, fixed=True)
    names = [f"ptr{n}.example.test" for n in range(50)]
    dns_server.serve(forward, {first: names, second: "x[/].test", third: "a[red]b[/].test"})
    done = subprocess.run(
        [
            "provision",
            "report",
            "-i",
            str(inventory),
            "-i",
            str(report_lab.inventory_file),
            "--dns-server",
            f"{dns_server.address}:{dns_server.port}",
            "--limit",
            HOST,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "MarkupError" not in done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    # Every column is kept (optional ones, "on host" and "warm-up", may stand between them).
    header = iter(next(line for line in lines if line.startswith("host ")).split())
    assert all(name in header for name in ("host", "instance", "transport", "address", "HELO", "PTR", "FCrDNS", "verdict"))
    problems = [line for line in lines if "✗" in line]
    assert {"out1", "out2", "bulk1"} <= {word.split("/")[-1] for line in problems for word in line.split()}
    flat = "".join(done.stdout.split())
    assert "x[/].test" in flat and "a[red]b[/].test" in flat and "(+47more)" in flat


def test_a_stopped_mta_is_a_problem_of_each_transport_it_runs(report_lab: Lab, inventory: Path, dns_server: DnsServer) -> None:
    dns_server.serve(*zone(report_lab, fixed=True))
    # (An earlier test's hand edit of master.cf may leave drift; this one is about the mail system.)
    assert json.loads(report(report_lab, inventory, dns_server, "--json").stdout)["hosts"][0]["mta"] == "running"
    code, output = report_lab.exec(HOST, ["postmulti", "-i", "postfix-bulk", "-p", "stop"])
    assert code == 0, output
    try:
        done = report(report_lab, inventory, dns_server, "--json")
        assert done.returncode == 2
        (host,) = json.loads(done.stdout)["hosts"]
        rows = outcomes({"hosts": [host]})
        assert rows[("postfix-bulk", "bulk1")]["problems"] == ["cannot send: postfix-bulk is not running"]
        assert rows[("postfix", "out1")]["problems"] == [] and host["mta"] == "not running: postfix-bulk"
        assert "postfix-bulk: not running" in host["problems"]
        code, output = report_lab.exec(HOST, ["postmulti", "-i", "-", "-p", "stop"])
        assert code == 0, output
        (host,) = json.loads(report(report_lab, inventory, dns_server, "--json").stdout)["hosts"]
        rows = outcomes({"hosts": [host]})
        assert rows[("postfix", "out1")]["problems"] == ["cannot send: Postfix is not running"]
        assert host["mta"] == "not running: postfix, postfix-bulk"
    finally:
        report_lab.exec(HOST, ["postmulti", "-i", "-", "-p", "start"])
        report_lab.exec(HOST, ["postmulti", "-i", "postfix-bulk", "-p", "start"])
    (host,) = json.loads(report(report_lab, inventory, dns_server, "--json").stdout)["hosts"]
    assert host["mta"] == "running" and not any(p.startswith("cannot send") for row in host["transports"] for p in row["problems"])


def test_postfix_not_installed_is_a_problem(report_lab: Lab, inventory: Path, dns_server: DnsServer) -> None:
    dns_server.serve(*zone(report_lab, fixed=True))
    done = report(report_lab, inventory, dns_server, "--json", limit=BARE)
    assert done.returncode == 2, done.stderr
    (host,) = json.loads(done.stdout)["hosts"]
    assert host["status"] == "ok" and host["mta"] == "not installed"
    assert "Postfix is not installed, and the inventory applies the postfix role" in host["problems"]
    table = report(report_lab, inventory, dns_server, limit=BARE)
    assert table.returncode == 2 and "not installed" in table.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_html_report_renders_in_a_real_browser(report_lab: Lab, inventory: Path, dns_server: DnsServer, tmp_path: Path) -> None:
    from PIL import Image

    dns_server.serve(*zone(report_lab, fixed=False))
    page = tmp_path / "report.html"
    assert report(report_lab, inventory, dns_server, "--html", str(page)).returncode == 2
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1100"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, check=True, timeout=120).stdout
    assert "Mail fleet report" in dom and "no PTR" in dom and "PTR not confirmed" in dom and "Instance postfix-bulk" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", page.as_uri()], capture_output=True, check=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1100)
    colours = image.getcolors(maxcolors=1 << 20) or []
    # The problem rows' highlight (#fdecea) and the verdicts' red (#c62828) are painted.
    painted = {colour: count for count, colour in colours}
    assert painted.get((0xFD, 0xEC, 0xEA), 0) > 5000
    assert painted.get((0xC6, 0x28, 0x28), 0) > 100
