"""Host facts (release, package versions) in templates, checks and ``requires``:
compiled before the probe with a placeholder, again with the probe's facts,
and a feature the host's version lacks refused before anything is pushed."""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.connectors.base import ConnectionSettings
from provision.engine.runner import RunOptions, run_hosts
from provision.errors import VariableError
from provision.roles.compiler import Project, VersionRefused, compile_hosts
from provision.roles.facts import HostFacts, PendingFacts, version_test
from provision.testing.fake import FakeConnector

BULLSEYE = HostFacts("debian", "11", "bullseye", "11.11", "3.9.2", {"postfix": "3.5.25-0+deb11u1", "python3": "3.9.2-3"}, {})
BOOKWORM = HostFacts(
    "debian", "12", "bookworm", "12.15", "3.11.2", {"postfix": None, "python3": "3.11.2-1+b1"}, {"postfix": "3.7.11-0+deb12u1"}
)
TRIXIE = HostFacts("debian", "13", "trixie", "13.8", "3.13.5", {"postfix": "3.10.5-1~deb13u1", "python3": "3.13.5-1"}, {})


@pytest.mark.parametrize(
    ("value", "reference", "operator", "expected"),
    [
        ("3.5.25-0+deb11u1", "3.6", ">=", False),
        ("3.10.5-1~deb13u1", "3.6", ">=", True),  # 10 > 6: not a string comparison
        ("3.7.11-0+deb12u1", "3.7.11", "==", True),  # the Debian revision counts only when asked for
        ("1:8.4p1-5+deb11u3", "9.0", "<", True),  # the epoch counts only when the reference has one
        ("1:8.4p1-5+deb11u3", "1:8.4p1-5+deb11u3", "eq", True),
        ("2.4.62-1~deb11u1", "2.4.62-1", ">", False),  # ~ sorts before anything
    ],
)
def test_version_test_uses_debian_ordering(value: str, reference: str, operator: str, expected: bool) -> None:
    assert version_test(value, reference, operator) is expected


def test_version_test_refuses_an_unknown_version_and_waits_for_pending_facts() -> None:
    with pytest.raises(ValueError, match="unknown version"):
        version_test(None, "3.6")
    with pytest.raises(ValueError, match="unknown operator"):
        version_test("3.6", "3.6", "~=")
    pending = PendingFacts()
    assert version_test(pending.packages.postfix, "3.6") is False
    assert not pending.release.codename and pending.uses >= 3


def postfix_project(make_tree: Callable[[dict[str, str]], Path], host_vars: dict[str, Any], roles: str = "postfix") -> Project:
    folder = make_tree(
        {
            "hosts.yml": yaml.safe_dump({"all": {"hosts": {"mx1": host_vars}}}),
            "site.yml": f"- hosts: all\n  roles: [{roles}]\n",
        }
    )
    return Project.load(folder)


def main_cf(project: Project, facts: HostFacts) -> dict[str, str]:
    text = project.compile("mx1", None, facts).desired.files["/etc/postfix/main.cf"].content.decode()
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)


def test_postfix_main_cf_follows_the_hosts_postfix_version(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = postfix_project(make_tree, {"postfix_tls": {"cert_file": "/etc/ssl/mx.pem", "key_file": "/etc/ssl/mx.key"}})
    assert project.compile("mx1").needs_facts
    old, new, newest = main_cf(project, BULLSEYE), main_cf(project, BOOKWORM), main_cf(project, TRIXIE)
    assert old["compatibility_level"] == "2" and new["compatibility_level"] == newest["compatibility_level"] == "3.6"
    assert old["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"  # Postfix 3.5 does not read ">="
    assert new["smtpd_tls_protocols"] == newest["smtp_tls_mandatory_protocols"] == ">=TLSv1.2"  # bookworm: apt's candidate


@pytest.mark.parametrize(
    ("host_vars", "facts", "message"),
    [
        (
            {"postfix_compatibility_level": "3.6"},
            BULLSEYE,
            "host mx1 (Debian 11.11 (bullseye)) has postfix 3.5.25-0+deb11u1: variable postfix_compatibility_level = '3.6' "
            "needs postfix 3.6 or later",
        ),
        (
            {"postfix_tls": {"cert_file": "/etc/ssl/mx.pem", "key_file": "/etc/ssl/mx.key", "protocols": ">=TLSv1.3"}},
            BULLSEYE,
            "has postfix 3.5.25-0+deb11u1: variable postfix_tls needs postfix 3.6 or later (the '>=TLSv1.2' form",
        ),
        (
            {"postfix_main": {"smtp_tlsrpt_enable": True}},
            BOOKWORM,
            "host mx1 (Debian 12.15 (bookworm)) has postfix 3.7.11-0+deb12u1: variable postfix_main needs postfix 3.10 or later "
            "(main.cf parameter smtp_tlsrpt_enable)",
        ),
    ],
)
def test_a_feature_the_hosts_postfix_lacks_is_refused_with_host_version_and_variable(
    make_tree: Callable[[dict[str, str]], Path], host_vars: dict[str, Any], facts: HostFacts, message: str
) -> None:
    project = postfix_project(make_tree, host_vars)
    project.compile("mx1")  # before the probe: nothing to judge yet
    with pytest.raises(VersionRefused) as refused:
        project.compile("mx1", None, facts)
    assert message in str(refused.value)
    assert "hosts.yml" in str(refused.value)  # where the variable was set
    assert main_cf(project, TRIXIE)  # the same variables suit a newer host


def test_python_mta_is_refused_on_bullseye_with_the_hosts_python(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = postfix_project(make_tree, {}, roles="python_mta")
    with pytest.raises(
        VersionRefused, match=r"host mx1 \(Debian 11.11 \(bullseye\)\) has python3 3.9.2-3: role python_mta needs python3 3.11"
    ):
        project.compile("mx1", None, BULLSEYE)
    assert "python3-aiosmtpd" in project.compile("mx1").desired.version_packages


def test_a_check_on_facts_waits_for_the_probe(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    h1:\n",
            "site.yml": "- hosts: all\n  roles: [pinned]\n",
            "roles/pinned/role.yml": """
                description: Only for trixie.
                checks:
                  - that: host_facts.release.codename == 'trixie'
                    message: "runs on trixie only, not {{ host_facts.release.codename }}"
                files:
                  - dest: /etc/pinned
                    content: "{{ host_facts.release.codename }}\\n"
            """,
        }
    )
    project = Project.load(folder)
    before = project.compile("h1")
    assert before.needs_facts and before.desired.files["/etc/pinned"].content == b"\n"
    assert project.compile("h1", None, TRIXIE).desired.files["/etc/pinned"].content == b"trixie\n"
    with pytest.raises(VariableError, match="runs on trixie only, not bullseye"):
        project.compile("h1", None, BULLSEYE)


def test_a_role_without_facts_is_compiled_once(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = postfix_project(make_tree, {}, roles="motd")
    assert not project.compile("mx1").needs_facts


# --- end to end on the fake host (the real agent in-process, on this machine's dpkg) ---


def run(folder: Path, root: Path, check: bool = False) -> tuple[Any, list[list[str]]]:
    connectors: list[FakeConnector] = []

    def factory(settings: ConnectionSettings) -> FakeConnector:
        connectors.append(FakeConnector(settings))
        return connectors[-1]

    project = Project.load(folder)
    (result,) = run_hosts(compile_hosts(project, project.select(None), None), RunOptions(check=check), factory=factory)
    return result, [c.operations for c in connectors]


def fact_project(make_tree: Callable[[dict[str, str]], Path], root: Path, requires: str = "") -> Path:
    root.mkdir(exist_ok=True)
    return make_tree(
        {
            "hosts.yml": f"all:\n  hosts:\n    h1:\n      connection: local\n      provision_root: {root}\n",
            "site.yml": "- hosts: all\n  roles: [release]\n",
            "roles/release/role.yml": f"""
                description: Writes what the host is.
                {requires}
                files:
                  - dest: /etc/release-facts
                    content: "{{{{ host_facts.release.codename }}}} python {{{{ host_facts.python }}}}\\n"
            """,
        }
    )


def test_templates_get_the_probes_facts_in_the_same_round_trips(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    folder = fact_project(make_tree, tmp_path / "root")
    result, operations = run(folder, tmp_path / "root")
    assert result.status == "changed" and operations == [["probe", "stage", "commit"]]
    codename = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)["VERSION_CODENAME"]
    python = ".".join(map(str, sys.version_info[:3]))
    assert (tmp_path / "root/etc/release-facts").read_text() == f"{codename} python {python}\n"
    again, operations = run(folder, tmp_path / "root", check=True)
    assert again.status == "ok" and operations == [["probe"]]  # still one round trip


def test_a_refused_host_gets_nothing_and_costs_one_round_trip(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    requires = 'requires:\n                  - {package: provision-no-such-package, version: "1.0", feature: a test}'
    folder = fact_project(make_tree, tmp_path / "root", requires)
    result, operations = run(folder, tmp_path / "root")
    assert result.status == "failed" and operations == [["probe"]]
    assert "host h1 (Debian" in result.errors[0]
    assert "has no provision-no-such-package (not installed, and apt knows no version of it): role release needs" in result.errors[0]
    assert not (tmp_path / "root/etc").exists()
    assert stat.S_ISDIR((tmp_path / "root").stat().st_mode)


def test_render_assumes_a_releases_versions(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from provision.cli import main

    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1:\n    mta1:\n",
            "site.yml": "- hosts: mx1\n  roles: [postfix]\n- hosts: mta1\n  roles: [python_mta]\n",
        }
    )
    levels = {}
    for release in ("bullseye", "bookworm", "trixie"):
        done = CliRunner().invoke(
            main, ["render", "-i", str(folder), "--limit", "mx1", "--release", release, "-o", str(tmp_path / release)]
        )
        assert done.exit_code == 0, done.stderr
        text = (tmp_path / release / "mx1/etc/postfix/main.cf").read_text()
        levels[release] = text.split("compatibility_level = ", 1)[1].split("\n", 1)[0]
    assert levels == {"bullseye": "2", "bookworm": "3.6", "trixie": "3.6"}
    refused = CliRunner().invoke(main, ["render", "-i", str(folder), "--release", "bullseye", "-o", str(tmp_path / "all")])
    assert refused.exit_code == 1 and "role python_mta needs python3 3.11 or later" in refused.stderr


def test_apt_is_asked_only_about_packages_the_roles_install_or_look_at(make_tree: Callable[[dict[str, str]], Path]) -> None:
    from provision.engine.converge import probe_request

    mail = probe_request(postfix_project(make_tree, {}).compile("mx1").desired, want_diff=False)
    assert mail["versions"][:4] == ["postfix", "apache2", "openssh-server", "openssl"]  # installed versions: every probe
    assert mail["candidates"] == ["postfix"]  # apt's candidate: what the role installs (not apache2)
    mta = probe_request(postfix_project(make_tree, {}, roles="python_mta").compile("mx1").desired, want_diff=False)
    # python_mta renders Postfix's main.cf, which looks at the postfix version Postfix would have.
    assert set(mta["candidates"]) == {"python3-venv", "python3-aiosmtpd", "python3-dnspython", "python3", "postfix"}


def test_a_host_compiled_alone_carries_its_refine_so_a_check_sees_no_false_drift(
    make_tree: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    """``provision report`` compiles hosts one by one and runs check's probe: the
    facts must be applied there too, or a bookworm host's level 3.6 would be drift."""
    from provision.engine.converge import ConvergeOptions, converge

    root = tmp_path / "root"
    root.mkdir()
    folder = make_tree(
        {
            "hosts.yml": f"all:\n  hosts:\n    h1:\n      connection: local\n      provision_root: {root}\n",
            "site.yml": "- hosts: all\n  roles: [level]\n",
            "roles/level/role.yml": """
                description: A level that depends on the installed openssl's version.
                files:
                  - dest: /etc/level
                    content: "{{ 'new' if host_facts.packages.openssl is version('1.1.1') else 'old' }}\\n"
            """,
        }
    )
    applied, _ = run(folder, root)
    assert applied.status == "changed" and (root / "etc/level").read_text() == "new\n"  # this machine's openssl is 3.x
    compiled = Project.load(folder).compile("h1")
    assert compiled.refine is not None

    def check(refine: Any) -> str:
        connector = FakeConnector(ConnectionSettings(name="h1", connection="local", root=str(root)))
        return converge(connector, compiled.desired, ConvergeOptions(check=True, run_id="t"), [], refine=refine).status

    assert check(compiled.refine) == "ok"
    assert check(None) == "changed"  # what the report showed before it passed refine: the placeholder's 'old'


def test_a_fleet_compiled_in_worker_processes_gets_refine_in_the_parent(make_tree: Callable[[dict[str, str]], Path]) -> None:
    hosts = "".join(f"    h{i}:\n" for i in range(200))
    folder = make_tree(
        {
            "hosts.yml": f"all:\n  hosts:\n{hosts}",
            "site.yml": "- hosts: all\n  roles: [named]\n",
            "roles/named/role.yml": """
                description: The release's name.
                files:
                  - dest: /etc/named
                    content: "{{ host_facts.release.codename }}\\n"
            """,
        }
    )
    project = Project.load(folder)
    compiled = compile_hosts(project, project.select(None), None)  # 200 hosts: forked workers
    assert len(compiled) == 200 and all(entry.refine is not None for entry in compiled.values())
    assert compiled["h199"].refine is not None
    assert compiled["h199"].refine(TRIXIE).desired.files["/etc/named"].content == b"trixie\n"
