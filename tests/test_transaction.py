"""The host-side transaction with the real agent on fake hosts (temp folders):
journal, lock, compare-and-swap, two-phase commit, rollback, leftovers,
backups kept, and what check and apply report. The same classes of failure
are proven on real hosts in tests/lab/test_transaction.py."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provision.agent import commit as agent_commit
from provision.connectors.base import CommandResult
from provision.testing.fake import FakeConnector
from tests.support.fake_hosts import FakeHosts


class Crash(BaseException):
    """The agent process dying (kill -9, OOM, a host crash): nothing after it runs."""


class DyingAgent(FakeConnector):
    """The agent's death is seen as the controller sees it: no answer."""

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        try:
            return super().run(command, stdin, timeout)
        except Crash:
            return CommandResult(137, b"", b"Killed")


@pytest.fixture
def hosts(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> FakeHosts:
    fake = FakeHosts(tmp_path, make_tree)
    fake.connector_class = DyingAgent
    return fake


@pytest.fixture
def crash_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int], None]]:
    """crash_at(name, n): the n-th call (from 1) of provision.agent.commit.NAME kills the agent."""

    def arm(name: str, when: int) -> None:
        original = getattr(agent_commit, name)
        calls = {"n": 0}

        def dying(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == when:
                raise Crash()
            return original(*args, **kwargs)

        monkeypatch.setattr(agent_commit, name, dying)

    yield arm
    monkeypatch.undo()


def journal(hosts: FakeHosts, host: str = "alpha") -> Path:
    return hosts.file(host, "/var/lib/provision/journal.json")


def ops(hosts: FakeHosts) -> list[list[str]]:
    return [c.operations for c in hosts.connectors]


# --- 1. the journal: no lost handler ---------------------------------------------


def test_handlers_owed_by_a_killed_commit_are_reported_by_check_and_run_by_apply(
    hosts: FakeHosts, crash_at: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts.run(limit="alpha")
    crash_at("run_handlers", 1)  # right after the renames, before any handler
    killed = hosts.run(limit="alpha", svc_port=2600)["alpha"]
    assert killed.status == "failed" and "the agent did not answer" in killed.errors[0]
    assert "port=2600" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()  # the files are new...
    assert hosts.handler_runs() == 1  # ...and the reload never ran
    assert json.loads(journal(hosts).read_text())["state"] == "committed"
    monkeypatch.undo()

    checked = hosts.run(check=True, limit="alpha", svc_port=2600)["alpha"]
    assert checked.status == "changed"  # drift: the host does not run what its files say
    assert checked.handlers == ["reload svc"]
    assert any("would finish interrupted run" in note and "reload svc" in note for note in checked.notes)
    assert hosts.handler_runs() == 1

    applied = hosts.run(limit="alpha", svc_port=2600)["alpha"]
    assert applied.status == "changed"
    assert ops(hosts) == [["probe", "commit"]]
    assert any(note.startswith("finished interrupted run") and "reload svc (exit 0)" in note for note in applied.notes)
    assert hosts.handler_runs() == 2
    assert not journal(hosts).exists()
    again = hosts.run(limit="alpha", svc_port=2600)["alpha"]
    assert again.status == "ok" and ops(hosts) == [["probe"]]


def test_a_commit_killed_between_renames_is_completed_by_the_next_run(
    hosts: FakeHosts, crash_at: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts.run(limit="alpha")
    real_rename = os.rename
    renames = {"n": 0}

    def rename_then_die(source: str, dest: str) -> None:
        real_rename(source, dest)
        if "/.provision-new-" in source:
            renames["n"] += 1
            if renames["n"] == 1:
                raise Crash()

    monkeypatch.setattr(os, "rename", rename_then_die)  # the os module the agent's commit calls
    hosts.run(limit="alpha", svc_port=2700, svc_password="changed-secret")
    monkeypatch.undo()
    new = [
        "port=2700" in hosts.file("alpha", "/etc/svc/svc.conf").read_text(),
        "changed-secret" in hosts.file("alpha", "/etc/svc/secret.conf").read_text(),
    ]
    assert sorted(new) == [False, True]  # a mix, for now
    applied = hosts.run(limit="alpha", svc_port=2700, svc_password="changed-secret")["alpha"]
    assert applied.status == "changed", applied.errors
    assert any("renames completed" in note for note in applied.notes)
    assert "port=2700" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()
    assert "changed-secret" in hosts.file("alpha", "/etc/svc/secret.conf").read_text()
    assert not list(hosts.file("alpha", "/etc/svc").glob(".provision-*"))


def test_a_commit_killed_before_any_rename_replaced_nothing(hosts: FakeHosts, crash_at: Callable[[str, int], None]) -> None:
    hosts.run(limit="alpha")
    before = hosts.file("alpha", "/etc/svc/svc.conf").read_text()
    crash_at("copy_durably", 2)  # the second new file, while writing beside
    hosts.run(limit="alpha", svc_port=2800, svc_password="another-secret")
    assert hosts.file("alpha", "/etc/svc/svc.conf").read_text() == before
    assert list(hosts.file("alpha", "/etc/svc").glob(".provision-new-*"))  # left by the dead agent
    applied = hosts.run(limit="alpha", svc_port=2800, svc_password="another-secret")["alpha"]
    assert applied.status == "changed", applied.errors
    assert any("had replaced nothing" in note for note in applied.notes)
    assert not list(hosts.file("alpha", "/etc/svc").glob(".provision-*"))
    assert "port=2800" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()


# --- 2. two runs at once: lock and compare-and-swap ---------------------------------


def write_lease(hosts: FakeHosts, **lease: Any) -> None:
    path = hosts.file("alpha", "/var/lib/provision/lease.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    base = {"run_id": "20260101T000000-other", "user": "ann", "controller": "ops1", "pid": 4242, "command": "provision apply"}
    path.write_text(json.dumps({**base, "since": now - 5, "expires": now + 60, **lease}))


def test_a_host_held_by_another_run_is_busy_and_says_who(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    write_lease(hosts, phase="staged")
    result = hosts.run(limit="alpha", svc_port=2900)["alpha"]
    assert result.status == "failed"
    assert "busy" in result.errors[0] and "20260101T000000-other" in result.errors[0] and "ann@ops1" in result.errors[0]
    assert ops(hosts) == [["probe"]]
    assert "port=2900" not in hosts.file("alpha", "/etc/svc/svc.conf").read_text()


def test_a_lease_whose_run_died_or_expired_does_not_hold_the_host(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    write_lease(hosts, phase="committing")  # its agent died: nobody holds the flock
    assert hosts.run(limit="alpha", svc_port=3000)["alpha"].status == "changed"
    write_lease(hosts, phase="staged", expires=time.time() - 1)
    assert hosts.run(limit="alpha", svc_port=3001)["alpha"].status == "changed"


def test_the_lock_is_said_busy_while_another_agent_works(hosts: FakeHosts) -> None:
    import fcntl

    from provision.agent.core import LOCK_WAIT

    hosts.run(limit="alpha")
    write_lease(hosts, phase="committing")
    with open(hosts.file("alpha", "/var/lib/provision/lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the other run's agent, alive
        started = time.monotonic()
        result = hosts.run(limit="alpha", svc_port=3100)["alpha"]
    assert result.status == "failed" and "busy" in result.errors[0] and "committing now" in result.errors[0]
    assert time.monotonic() - started < LOCK_WAIT + 5


class ChangedUnderneath(DyingAgent):
    """Another writer changes a declared file between this run's probe and its commit."""

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        if b'"op": "commit"' in stdin[-20000:]:
            root = Path(self.settings.root)
            (root / "etc/svc/plain.txt").write_text("written by the other run\n")
        return super().run(command, stdin, timeout)


def test_commit_is_a_compare_and_swap_against_the_probe(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    before = hosts.file("alpha", "/etc/svc/svc.conf").read_text()
    hosts.connector_class = ChangedUnderneath
    result = hosts.run(limit="alpha", svc_port=3200)["alpha"]
    assert result.status == "failed"
    assert "the host changed since it was probed" in result.errors[0] and "/etc/svc/plain.txt" in result.errors[0]
    assert hosts.file("alpha", "/etc/svc/svc.conf").read_text() == before  # nothing of this run
    assert hosts.file("alpha", "/etc/svc/plain.txt").read_text() == "written by the other run\n"  # the other run's kept
    assert result.files == [] and hosts.handler_runs() == 1


# --- 3. two-phase commit and rollback ---------------------------------------------


def test_a_full_disk_fails_before_any_file_is_replaced(hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts.run(limit="alpha")
    before = {p: hosts.file("alpha", p).read_bytes() for p in ("/etc/svc/svc.conf", "/etc/svc/secret.conf")}
    real = agent_commit.copy_durably
    calls = {"n": 0}

    def full(source: str, dest: str, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dest)
        real(source, dest, *args)

    monkeypatch.setattr(agent_commit, "copy_durably", full)
    result = hosts.run(limit="alpha", svc_port=3300, svc_password="third-secret")["alpha"]
    assert result.status == "failed"
    assert "before any file was replaced (nothing was changed)" in result.errors[0] and "No space left on device" in result.errors[0]
    assert {p: hosts.file("alpha", p).read_bytes() for p in before} == before
    assert not list(hosts.file("alpha", "/etc/svc").glob(".provision-*"))
    assert not journal(hosts).exists()
    assert result.files == []


def test_a_rollback_restores_what_it_can_and_names_what_it_could_not(hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts.run(limit="alpha")
    before = {p: hosts.file("alpha", p).read_text() for p in ("/etc/svc/svc.conf", "/etc/svc/secret.conf")}
    real_rename = os.rename

    def stuck(source: str, dest: str) -> None:
        if "/.provision-old-" in source and dest.endswith("svc.conf"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), dest)
        real_rename(source, dest)

    monkeypatch.setattr(os, "rename", stuck)
    result = hosts.run(limit="alpha", svc_port=3400, svc_password="fourth-secret", svc_handler_ok=False)["alpha"]
    assert result.status == "failed"
    error = result.errors[0]
    assert "handler 'reload svc' failed" in error
    assert "previous files restored: /etc/svc/secret.conf" in error
    assert "NOT restored: /etc/svc/svc.conf (Read-only file system; its previous content is in " in error
    backup = error.split("its previous content is in ")[1].split(")")[0]
    assert Path(backup).read_text() == before["/etc/svc/svc.conf"]
    assert hosts.file("alpha", "/etc/svc/secret.conf").read_text() == before["/etc/svc/secret.conf"]
    assert [f.path for f in result.files] == ["/etc/svc/svc.conf"]  # the one that did change
    assert "fourth-secret" not in error


# --- leftovers and backups -------------------------------------------------------


def test_leftovers_of_interrupted_runs_are_removed_by_the_next_run(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    stale = hosts.file("alpha", "/var/lib/provision/staging/20250101T000000-dead/etc/svc/svc.conf")
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    temp = hosts.file("alpha", "/etc/svc/.provision-new-20250101T000000-dead-0")
    temp.write_text("half written")
    result = hosts.run(limit="alpha")["alpha"]
    assert result.status == "ok" and ops(hosts) == [["probe", "commit"]]
    assert not stale.parent.parent.parent.exists() and not temp.exists()
    assert any("removed what interrupted runs left" in note for note in result.notes)
    assert ops(hosts) == [["probe", "commit"]]
    assert hosts.run(limit="alpha")["alpha"].round_trips == 1


def test_backups_of_the_last_n_runs_are_kept(hosts: FakeHosts) -> None:
    hosts.run(limit="alpha")
    for port in range(3500, 3505):
        assert hosts.run(limit="alpha", svc_port=port, provision_keep_backups=2)["alpha"].status == "changed"
    # Several runs fall in one second: a run's folder is younger than the one before it.
    made = sorted(hosts.file("alpha", "/var/backups/provision").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    runs = [p.name for p in made]
    assert len(runs) == 2
    newest = hosts.file("alpha", f"/var/backups/provision/{runs[-1]}/etc/svc/svc.conf").read_text()
    assert "port=3503" in newest  # what the last run replaced
    assert hosts.run(limit="alpha", provision_keep_backups=0)["alpha"].status == "failed"


# --- what check and apply say (issue 14: 1, 2, 5) --------------------------------------


def test_check_validates_drift_and_says_it_would_fail(hosts: FakeHosts) -> None:
    hosts.run()
    result = hosts.run(check=True, limit="alpha", svc_port=3600, svc_validate_ok=False)["alpha"]
    assert result.status == "failed"
    assert result.errors[0].startswith("would fail validation (svc config check)")
    assert ops(hosts) == [["probe", "stage"]]
    assert not list(hosts.file("alpha", "/var/lib/provision").glob("check/*"))
    fine = hosts.run(check=True, limit="alpha", svc_port=3600)["alpha"]
    assert fine.status == "changed" and fine.round_trips == 2 and fine.handlers == ["reload svc"]
    in_sync = hosts.run(check=True, limit="alpha")["alpha"]
    assert in_sync.status == "ok" and in_sync.round_trips == 1
    assert "port=2525" in hosts.file("alpha", "/etc/svc/svc.conf").read_text()


def test_apply_reports_changed_files_only_once_committed(hosts: FakeHosts) -> None:
    hosts.run()
    failed = hosts.run(limit="alpha", svc_port=3700, svc_handler_ok=False)["alpha"]
    assert failed.status == "failed" and failed.files == []
    refused = hosts.run(limit="alpha", svc_port=3700, svc_validate_ok=False)["alpha"]
    assert refused.status == "failed" and refused.files == []
    done = hosts.run(limit="alpha", svc_port=3700)["alpha"]
    assert [f.path for f in done.files] == ["/etc/svc/svc.conf"]
