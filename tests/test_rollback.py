"""``provision rollback RUN`` (issue 14.10): the files of one run put back from
the host's backups, validated and with handlers like an apply; check then
reports the drift from the inventory."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from provision.engine.converge import HostResult
from provision.engine.rollback import rollback_hosts
from provision.engine.runner import RunOptions
from provision.roles.compiler import Project, compile_hosts
from tests.fixtures import svc_project
from tests.support.fake_hosts import FakeHosts


@pytest.fixture
def hosts(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> FakeHosts:
    return FakeHosts(tmp_path, make_tree)


def run_id(result: HostResult) -> str:
    [note] = [n for n in result.notes if "provision rollback" in n]
    found = re.search(r"provision rollback (\S+) puts it back", note)
    assert found is not None
    return found.group(1)


def rollback(hosts: FakeHosts, run: str, check: bool = False, **extra_vars: object) -> tuple[dict[str, HostResult], list[str]]:
    hosts.connectors = []
    project = Project.load(hosts.project_dir)
    for name, value in extra_vars.items():
        project.inventory.groups["all"].vars[name] = value
    compiled = compile_hosts(project, project.select("alpha"), None)
    results, had = rollback_hosts(compiled, run, RunOptions(check=check), factory=hosts.factory)
    return {r.host: r for r in results}, had


def test_a_run_is_put_back_validated_and_with_its_handlers(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    changed = hosts.run(limit="alpha", svc_port=2600, svc_banner="second")["alpha"]
    run = run_id(changed)
    assert hosts.handler_runs() == 2
    would, _ = rollback(hosts, run, check=True)
    assert would["alpha"].status == "changed" and sorted(f.path for f in would["alpha"].files) == [
        "/etc/svc/plain.txt",
        "/etc/svc/svc.conf",
    ]
    assert "port=2600" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()
    results, had = rollback(hosts, run)
    assert had == ["alpha"]
    back = results["alpha"]
    assert back.status == "changed", back.errors
    assert sorted(f.path for f in back.files) == ["/etc/svc/plain.txt", "/etc/svc/svc.conf"]
    assert back.handlers == ["reload svc"] and hosts.handler_runs() == 3
    assert "port=2525" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()
    assert hosts.file("alpha", "/etc/svc/plain.txt").read_text() == "plain hello\n"
    drift = hosts.run(check=True, limit="alpha", svc_port=2600, svc_banner="second")["alpha"]
    assert drift.status == "changed" and sorted(f.path for f in drift.files) == ["/etc/svc/plain.txt", "/etc/svc/svc.conf"]
    # The rollback is a run of its own: it can be rolled back too.
    again, _ = rollback(hosts, run_id(back))
    assert again["alpha"].status == "changed"
    assert "port=2600" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()


def test_a_rollback_the_validators_refuse_changes_nothing(hosts: FakeHosts) -> None:
    first = hosts.run(limit="alpha")["alpha"]  # created every file: its rollback removes them
    results, _ = rollback(hosts, run_id(first))
    refused = results["alpha"]
    assert refused.status == "failed" and "svc config check" in refused.errors[0]  # svc.conf is what the validator needs
    assert hosts.file("alpha", "/etc/svc/svc.conf").exists() and refused.files == []


def test_a_created_file_is_removed(hosts: FakeHosts) -> None:
    first = hosts.run(limit="alpha")["alpha"]
    # Without a validator that needs svc.conf, the files the first run created go.
    hosts.project_dir.joinpath("roles/svc/role.yml").write_text(
        hosts.project_dir.joinpath("roles/svc/role.yml").read_text().replace("files: [/etc/svc/svc.conf]", "files: []")
    )
    results, _ = rollback(hosts, run_id(first))
    removed = results["alpha"]
    assert removed.status == "changed", removed.errors
    assert sorted(f.path for f in removed.files) == ["/etc/svc/plain.txt", "/etc/svc/secret.conf", "/etc/svc/svc.conf"]
    assert all(f.reasons == ["remove"] for f in removed.files)
    assert not hosts.file("alpha", "/etc/svc/svc.conf").exists()
    assert not list(hosts.file("alpha", "/etc/svc").glob(".provision-*"))


def test_an_unknown_run_is_said(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    results, had = rollback(hosts, "20200101T000000.000000-nothere")
    assert had == [] and results["alpha"].status == "ok"
    assert results["alpha"].notes[0].startswith("no backups of run '20200101T000000.000000-nothere' on this host")


def test_the_command(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = make_tree(svc_project(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "log")))

    def provision(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["provision", *args], capture_output=True, text=True, check=False)

    provision("apply", "-i", str(project))
    (project / "group_vars").mkdir()
    (project / "group_vars/all.yml").write_text("svc_port: 2700\n")
    applied = json.loads(provision("apply", "-i", str(project), "--json", "--limit", "alpha").stdout)
    [note] = [n for n in applied["hosts"]["alpha"]["notes"] if "provision rollback" in n]
    run = note.split("provision rollback ")[1].split()[0]
    done = provision("rollback", run, "-i", str(project))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alpha: changed /etc/svc/svc.conf" in done.stdout
    assert "port=2525" in (tmp_path / "a/etc/svc/svc.conf").read_text()
    assert provision("check", "-i", str(project), "--limit", "alpha").returncode == 2
    unknown = provision("rollback", "20200101T000000.000000-nothere", "-i", str(project))
    assert unknown.returncode == 1 and "error: no host of alpha, beta keeps backups of run" in unknown.stderr
