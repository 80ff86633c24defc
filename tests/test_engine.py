"""The engine against the in-memory fake connector (which runs the real agent
on a temp folder): round-trip budget, validation, handlers, rollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from provision.connectors.base import CommandResult
from provision.engine.runner import RunOptions, run_hosts
from provision.roles.compiler import Project, compile_hosts
from provision.testing.fake import FakeConnector
from tests.support.fake_hosts import FakeHosts

Lab = FakeHosts


@pytest.fixture
def lab(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Lab:
    return FakeHosts(tmp_path, make_tree)


def test_first_apply_creates_everything_in_three_round_trips(lab: Lab) -> None:
    results = lab.run()
    for host in ("alpha", "beta"):
        assert results[host].status == "changed"
        assert results[host].round_trips == 3
        assert results[host].handlers == ["reload svc"]
        conf = lab.file(host, "/etc/svc/svc.conf")
        assert "port=2525\n" in conf.read_text()
        assert oct(conf.stat().st_mode & 0o777) == "0o644"
        assert oct(lab.file(host, "/etc/svc/secret.conf").stat().st_mode & 0o777) == "0o600"
        assert oct(lab.file(host, "/srv/svc").stat().st_mode & 0o777) == "0o750"
    assert lab.handler_runs() == 2  # once per host, although two notifying files changed
    assert [c.operations for c in lab.connectors] == [["probe", "stage", "commit"]] * 2


def test_second_apply_changes_nothing_in_one_round_trip(lab: Lab) -> None:
    lab.run()
    results = lab.run()
    assert {r.status for r in results.values()} == {"ok"}
    assert [c.operations for c in lab.connectors] == [["probe"], ["probe"]]
    assert lab.handler_runs() == 2


def test_check_in_sync_sends_exactly_one_command(lab: Lab) -> None:
    lab.run()
    results = lab.run(check=True)
    assert all(r.status == "ok" and r.round_trips == 1 for r in results.values())
    assert all(len(c.calls) == 1 for c in lab.connectors)


def test_check_names_the_drifted_file_and_changes_nothing(lab: Lab) -> None:
    lab.run()
    edited = lab.file("alpha", "/etc/svc/plain.txt")
    edited.write_text("edited by hand\n")
    results = lab.run(check=True, diff=True)
    assert results["alpha"].status == "changed"
    assert [f.path for f in results["alpha"].files] == ["/etc/svc/plain.txt"]
    diff = results["alpha"].files[0].diff or ""
    assert "-edited by hand" in diff and "+plain hello" in diff
    assert results["beta"].status == "ok"
    assert edited.read_text() == "edited by hand\n"
    repaired = lab.run()
    assert repaired["alpha"].status == "changed" and edited.read_text() == "plain hello\n"
    assert repaired["alpha"].handlers == []  # plain.txt notifies nothing


def test_mode_drift_is_fixed_without_staging_or_handler(lab: Lab) -> None:
    lab.run()
    lab.file("alpha", "/etc/svc/svc.conf").chmod(0o666)
    results = lab.run(limit="alpha")
    assert results["alpha"].files[0].reasons == ["mode"]
    assert lab.connectors[0].operations == ["probe", "commit"]
    assert results["alpha"].handlers == []
    assert lab.file("alpha", "/etc/svc/svc.conf").stat().st_mode & 0o777 == 0o644


def test_failed_validation_changes_nothing(lab: Lab) -> None:
    lab.run()
    before = lab.file("alpha", "/etc/svc/svc.conf").read_text()
    results = lab.run(svc_port=2600, svc_validate_ok=False)
    assert results["alpha"].status == "failed"
    assert "svc config check" in results["alpha"].errors[0]
    assert "nothing was changed" in results["alpha"].errors[0]
    assert lab.file("alpha", "/etc/svc/svc.conf").read_text() == before
    assert lab.handler_runs() == 2
    assert not list((lab.roots["alpha"] / "var/lib/provision/staging").iterdir())


def test_failed_handler_restores_previous_files_and_reruns_handler(lab: Lab) -> None:
    lab.run()
    before = lab.file("alpha", "/etc/svc/svc.conf").read_text()
    results = lab.run(limit="alpha", svc_port=2700, svc_handler_ok=False)
    assert results["alpha"].status == "failed"
    assert "handler 'reload svc' failed" in results["alpha"].errors[0]
    assert lab.file("alpha", "/etc/svc/svc.conf").read_text() == before
    # first run: 2 hosts; now the failing handler and its re-run after restore
    assert lab.handler_runs() == 4


def test_changed_content_is_backed_up(lab: Lab) -> None:
    lab.run()
    lab.run(limit="alpha", svc_port=2800)
    backups = list((lab.roots["alpha"] / "var/backups/provision").glob("*/etc/svc/svc.conf"))
    assert len(backups) == 1 and "port=2525" in backups[0].read_text()
    assert "port=2800" in lab.file("alpha", "/etc/svc/svc.conf").read_text()


def test_secret_file_diff_shows_only_hashes(lab: Lab) -> None:
    lab.run()
    results = lab.run(check=True, diff=True, svc_password="n3w-s3cret-value")
    report = {f.path: f for f in results["alpha"].files}
    secret = report["/etc/svc/secret.conf"]
    assert secret.secret
    assert secret.diff is not None and "n3w-s3cret-value" not in secret.diff and "hunter2" not in secret.diff
    assert "sha256" in secret.diff


def test_unreachable_host_does_not_stop_the_others(lab: Lab) -> None:
    lab.unreachable = {"alpha"}
    results = lab.run()
    assert results["alpha"].status == "unreachable"
    assert "connection refused" in results["alpha"].errors[0]
    assert results["beta"].status == "changed"


@pytest.mark.parametrize(("serial", "most_at_once"), [(1, 1), (0, 2)])
def test_serial_runs_hosts_in_batches(lab: Lab, serial: int, most_at_once: int) -> None:
    """With --serial 1 no two hosts are ever talked to at once, although forks allow it;
    without it (the control) they are, so the count shows batching, not luck."""
    busy, most = 0, 0
    lock = threading.Lock()

    class Slow(FakeConnector):
        def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
            nonlocal busy, most
            with lock:
                busy += 1
                most = max(most, busy)
            try:
                time.sleep(0.2)  # long enough for another host's call to overlap, were it allowed to
                return super().run(command, stdin, timeout)
            finally:
                with lock:
                    busy -= 1

    project = Project.load(lab.project_dir)
    compiled = compile_hosts(project, project.select(None), None)
    results = run_hosts(compiled, RunOptions(serial=serial, forks=5), factory=lambda settings: Slow(settings))
    assert [r.status for r in results] == ["changed", "changed"]
    assert most == most_at_once


def test_secret_in_a_validator_message_is_masked(lab: Lab) -> None:
    lab.run()
    project_role = lab.project_dir / "roles/svc/role.yml"
    project_role.write_text(
        project_role.read_text()
        .replace(
            "{{ 'true' if svc_validate_ok else 'echo refused {staging}/etc/svc/svc.conf; false' }}",
            "cat {staging}/etc/svc/secret.conf; false",
        )
        .replace("files: [/etc/svc/svc.conf]", "files: [/etc/svc/svc.conf, /etc/svc/secret.conf]")
    )
    results = lab.run(limit="alpha", svc_password="an0ther-secret")
    assert results["alpha"].status == "failed"
    assert "password=********" in results["alpha"].errors[0]
    assert "an0ther-secret" not in results["alpha"].errors[0]
