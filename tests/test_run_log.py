"""The run log, ``provision history``, ``-v``/``-vv`` and progress while piped
(issue 14, points 8 and 9), through the real command with the local connector."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provision import runlog, statedir
from tests.fixtures import svc_project

SECRET = "hunter2-secret"  # svc_password's default: it lands in /etc/svc/secret.conf


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("PROVISION_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Path:
    return make_tree(svc_project(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "log")))


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False)


def records(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "runs.jsonl").read_text().splitlines()]


def test_apply_and_check_each_append_one_record(project: Path, state: Path, tmp_path: Path) -> None:
    assert provision("apply", "-i", str(project), "--diff").returncode == 0
    (tmp_path / "b" / "etc/svc/svc.conf").write_text("port=1\n")
    assert provision("check", "-i", str(project), "--diff", "--limit", "beta").returncode == 2
    assert provision("apply", "-i", str(project), "--limit", "beta").returncode == 0
    applied, checked, repaired = records(state)
    assert (applied["command"], applied["check"], checked["command"], checked["check"]) == ("apply", False, "check", True)
    assert applied["user"] and applied["inventory"] == [str(project.resolve())] and checked["limit"] == "beta"
    assert applied["hosts"]["alpha"]["status"] == "changed"
    assert sorted(applied["hosts"]["alpha"]["changed"]) == ["/etc/svc/plain.txt", "/etc/svc/secret.conf", "/etc/svc/svc.conf"]
    assert applied["hosts"]["alpha"]["handlers"] == ["reload svc"]
    assert checked["hosts"] == {"beta": checked["hosts"]["beta"]} and checked["hosts"]["beta"]["changed"] == ["/etc/svc/svc.conf"]
    assert checked["summary"] == {"changed": 1}
    # The run id is the one the hosts' backups are filed under.
    backups = tmp_path / "b" / "var/backups/provision"
    assert repaired["hosts"]["beta"]["changed"] == ["/etc/svc/svc.conf"]
    assert (backups / repaired["run_id"] / "etc/svc/svc.conf").read_text() == "port=1\n"
    assert repaired["run_id"] in [p.name for p in backups.iterdir()]
    text = (state / "runs.jsonl").read_text()
    assert SECRET not in text and "password=" not in text  # no content, no diff, no secret
    assert (state / "runs.jsonl").stat().st_mode & 0o777 == 0o600


def test_history_lists_runs_and_what_changed_on_a_host(project: Path, state: Path) -> None:
    provision("apply", "-i", str(project))
    provision("check", "-i", str(project), "--tags", "svc")
    listing = subprocess.run(["provision", "history"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    lines = listing.stdout.splitlines()
    assert listing.returncode == 0 and len(lines) == 3, listing.stdout
    assert "apply" in lines[1] and "changed=2" in lines[1] and "check -t svc" in lines[2] and "ok=2" in lines[2]
    assert all(len(line.rstrip()) <= 80 for line in lines)
    on_beta = provision("history", "--host", "beta").stdout
    assert "/etc/svc/secret.conf" in on_beta and "directory /srv/svc" in on_beta
    document = json.loads(provision("history", "--host", "beta", "--json").stdout)
    assert [list(entry["hosts"]) for entry in document] == [["beta"], ["beta"]]
    assert provision("history", "--host", "nobody").stderr.startswith("no runs touching nobody in ")


def test_a_log_that_cannot_be_written_is_said_and_the_run_goes_on(project: Path, state: Path) -> None:
    state.mkdir()
    (state / "runs.jsonl").mkdir()  # not a file: the append fails
    done = provision("apply", "-i", str(project))
    assert done.returncode == 0
    assert "warning: could not write the run log" in done.stderr


def test_concurrent_appends_never_mix_lines(tmp_path: Path) -> None:
    target = tmp_path / "runs.jsonl"
    big = {"hosts": {f"host{i}": {"status": "ok", "changed": ["/x" * 200]} for i in range(200)}}
    script = f"from provision import runlog; import pathlib\nfor _ in range(20): runlog.append({big!r}, pathlib.Path({str(target)!r}))"
    writers = [subprocess.Popen(["python3", "-c", script]) for _ in range(4)]
    assert [w.wait() for w in writers] == [0, 0, 0, 0]
    assert len(list(runlog.read(target))) == 80  # every line whole: none torn, none interleaved


def test_state_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROVISION_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert runlog.log_file() == tmp_path / "xdg" / "provision" / "runs.jsonl"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # invalid by the specification: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert statedir.state_dir() == tmp_path / "home" / ".local" / "state" / "provision"


def test_verbose_shows_each_round_trip_and_very_verbose_what_was_sent(project: Path, state: Path) -> None:
    done = provision("apply", "-i", str(project), "-v", "--limit", "alpha")
    trips = [line for line in done.stderr.splitlines() if line.startswith("alpha: round trip")]
    assert [t.split(":")[1].strip() for t in trips] == ["round trip 1 (probe)", "round trip 2 (stage)", "round trip 3 (commit)"]
    assert all(" s, exit 0, sent " in t for t in trips)
    again = provision("check", "-i", str(project), "-vv", "--limit", "alpha", "--diff")
    sent = [line for line in again.stderr.splitlines() if "round trip 1 (probe) sends: " in line or "request: " in line]
    assert len(sent) == 2 and '"op": "probe"' in sent[1]
    provision("apply", "-i", str(project), "--limit", "alpha")
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_password: An0ther-Secret-Value\n")
    staged = provision("apply", "-i", str(project), "-vv", "--limit", "alpha")
    assert '"content_b64": "<' in staged.stderr and " bytes>" in staged.stderr  # contents shown by size only
    assert "An0ther-Secret-Value" not in staged.stderr and SECRET not in staged.stderr
    quiet = provision("check", "-i", str(project))
    assert "round trip" not in quiet.stderr


def test_very_verbose_never_shows_a_secret_a_handler_or_validator_command_holds(project: Path, state: Path) -> None:
    role = project / "roles" / "svc" / "role.yml"
    text = role.read_text().replace("echo reloaded >>", "echo reloaded {{ svc_password }} >/dev/null; echo reloaded >>")
    role.write_text(text.replace("grep -q '^port='", "test -n '{{ svc_password }}' && grep -q '^port='"))
    done = provision("apply", "-i", str(project), "-vv", "--limit", "alpha")
    assert done.returncode == 0, done.stderr
    sent = [line for line in done.stderr.splitlines() if "request: " in line]
    assert any('"handlers"' in line for line in sent) and any('"validators"' in line for line in sent), sent
    assert SECRET not in done.stderr and "********" in done.stderr


SLOW_ROLE = {
    "roles/slow/role.yml": """
        variables:
          slow_seconds: {type: int, default: 0, description: How long the handler takes.}
        files:
          - dest: /etc/slow
            content: "{{ slow_seconds }}\\n"
            notify: [wait]
        handlers:
          - name: wait
            command: "sleep {{ slow_seconds }}"
    """,
    "site.yml": "- hosts: all\n  roles: [slow]\n",
}


def test_piped_output_says_each_host_as_it_finishes_in_that_order(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = make_tree(
        {
            **SLOW_ROLE,
            "hosts.yml": f"""
                all:
                  vars: {{connection: local}}
                  hosts:
                    first: {{provision_root: {tmp_path / "f"}, slow_seconds: 4}}
                    second: {{provision_root: {tmp_path / "s"}}}
            """,
        }
    )
    started = time.monotonic()
    run = subprocess.Popen(["provision", "apply", "-i", str(project)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    first_line = run.stderr.readline()
    # Said while the slow host still works, not when all is over.
    assert run.poll() is None, "the first progress line came only at the end"
    assert first_line.startswith("[1/2] second: changed, 1 change, "), first_line
    rest, _ = run.communicate(timeout=60)[1], None
    assert rest.splitlines()[0].startswith("[2/2] first: changed, 1 change, ")
    assert time.monotonic() - started >= 4
