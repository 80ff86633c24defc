"""What a user sees on an 80-column terminal: names whole, text as written,
diff lines with their +/- (issue 14, small things)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from provision.report.model import HostReport, InstanceReport, Report, TransportReport
from provision.report.output import print_report
from provision.roles.loader import RoleLoader, available_roles
from tests.conftest import ROOT


def narrow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "80"})


def test_roles_overview_keeps_every_variable_name_whole() -> None:
    done = narrow("roles")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines) and "…" not in done.stdout
    for name in available_roles([ROOT / "roles"]):
        for variable in RoleLoader([ROOT / "roles"]).get(name).variables:
            assert any(line.startswith(variable + " ") for line in lines), variable


def test_role_details_keep_names_and_bracketed_text() -> None:
    done = narrow("roles", "postfix")
    assert "…" not in done.stdout
    assert 'such as "[relay.example.net]:587"' in done.stdout  # not read as markup and dropped
    assert "postfix_default_destination_concurrency_limit  int" in done.stdout


def report() -> Report:
    transports = [
        TransportReport("postfix", "out1", "198.51.100.1", "out1.mx1.example.net", ["out1.mx1.example.net"], True, True),
        TransportReport("postfix-out", "bulk1", "203.0.113.77", "bulk1.mx1.example.net", [], False, False, "no PTR", "NXDOMAIN"),
    ]
    host = HostReport("mx1.example.net", transports=transports, instances=[InstanceReport("postfix", "/etc/postfix", 3, 0)])
    return Report("now", "system", [host])


def rendered(width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    print_report(console, report())
    return console.export_text()


def test_report_at_80_columns_keeps_names_and_verdicts() -> None:
    """Every column stays; long cells wrap (issue 21: wrap, keep every column), nothing is cut."""
    text = rendered(80)
    assert "…" not in text
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    header = next(line for line in text.splitlines() if line.startswith("host "))
    assert header.split() == ["host", "instance", "transport", "address", "HELO", "PTR", "FCrDNS", "verdict"]
    flat = "".join(text.split())  # wrapped cells: their text is all there, in order
    assert "mx1.example.net" in flat and "postfix-out" in flat and "203.0.113.77" in flat and "noPTR(NXDOMAIN)" in flat


def test_report_on_a_wide_terminal_is_a_table() -> None:
    text = rendered(200)
    assert "verdict" in text and "no PTR (NXDOMAIN)" in text and "…" not in text
    assert "mx1.example.net  postfix-out  bulk1      203.0.113.77" in text  # one line per transport when it fits


def test_onboard_dry_run_diff_lines_keep_their_sign(make_tree: Callable[[dict[str, str]], Path]) -> None:
    inventory = make_tree(
        {
            "hosts.yml": "all:\n  children:\n    mail:\n      hosts:\n",
            "site.yml": "- hosts: mail\n  roles: [postfix]\n",
        }
    )
    host = "mx-relay-frankfurt-0001.bulk-senders.example.test"  # makes host_vars lines longer than 80 columns
    done = narrow("onboard", host, "-i", str(inventory), "-g", "mail", "-a", "127.70.0.1", "--dry-run")
    assert done.returncode == 0, done.stderr
    diff = done.stdout.split("would change", 2)[2].split("\nroles: postfix", 1)[0].split("\n", 1)[1]
    lines = [line for line in diff.splitlines() if line and not line.startswith(("---", "+++", "@@"))]
    assert any(len(line) > 80 for line in lines)
    assert all(line[0] in "+- " for line in lines), [line for line in lines if line[0] not in "+- "]


def test_html_report_says_where_it_wrote(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> None:
    inventory = make_tree({"hosts.yml": f"all:\n  hosts:\n    alpha: {{connection: local, provision_root: {tmp_path / 'a'}}}\n"})
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    done = narrow("report", "-i", str(inventory), "--html", str(page), "--json")
    assert page.is_file() and f"wrote the HTML report to {page}" in done.stderr
