"""Ctrl-C through the real ``provision`` command, on hosts reached with the
local connector (folders under a temporary root): no new host or round trip
starts, the one in flight is let go after a moment, each host's state is
printed, and the exit code is 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SLOW_ROLE = {
    "roles/slow/role.yml": """
        description: A file, a fact that takes a moment to read, and a handler that takes a while.
        variables:
          slow_log: {type: path, required: true, description: Where the handler logs.}
          slow_probe: {type: int, default: 0, description: Seconds the probe's fact takes.}
          slow_handler: {type: int, default: 0, description: Seconds the handler takes.}
        files:
          - dest: /etc/slow/slow.conf
            content: "slow\\n"
            notify: [slow handler]
        facts:
          slow_fact: "echo probing {{ inventory_hostname }} >> {{ slow_log }}; sleep {{ slow_probe }}; echo read"
        handlers:
          - name: slow handler
            command: >-
              echo started {{ inventory_hostname }} >> {{ slow_log }}; sleep {{ slow_handler }};
              echo done {{ inventory_hostname }} >> {{ slow_log }}
    """,
    "site.yml": """
        - hosts: all
          roles: [slow]
    """,
}


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Callable[[int, int], Path]:
    def make(probe: int, handler: int) -> Path:
        hosts = "".join(f"    {name}: {{provision_root: {tmp_path / name}}}\n" for name in ("alpha", "beta", "gamma"))
        return make_tree(
            {
                **SLOW_ROLE,
                "hosts.yml": f"all:\n  vars:\n    connection: local\n    slow_log: {tmp_path / 'log'}\n"
                f"    slow_probe: {probe}\n    slow_handler: {handler}\n  hosts:\n{hosts}",
            }
        )

    return make


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["provision", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )


def wait_for(test: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_ctrl_c_during_a_commit_lets_it_go_and_starts_nothing_else(project: Callable[[int, int], Path], tmp_path: Path) -> None:
    folder = project(0, 20)
    log = tmp_path / "log"
    run = start("apply", "-i", str(folder), "--forks", "1")
    wait_for(lambda: log.exists() and "started" in log.read_text())
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    # It stopped while alpha's handler still ran (its "done" line comes 20 s after "started").
    assert "done" not in log.read_text()
    assert run.returncode == 130, stdout + stderr
    assert "interrupted: no new host or round trip starts" in stderr
    started = next(line.split()[1] for line in log.read_text().splitlines() if line.startswith("started"))
    others = sorted({"alpha", "beta", "gamma"} - {started})
    assert f"{started}: interrupted: let go while it committed: the host finishes the commit and its handlers by itself" in stdout
    for host in others:
        assert f"{host}: interrupted: not started: nothing was asked of the host" in stdout
        assert not (tmp_path / host / "etc/slow").exists()
    assert (tmp_path / started / "etc/slow/slow.conf").read_text() == "slow\n"  # the commit had written its files


def test_ctrl_c_during_a_probe_stops_before_staging(project: Callable[[int, int], Path], tmp_path: Path) -> None:
    folder, log = project(2, 0), tmp_path / "log"
    run = start("apply", "-i", str(folder), "--forks", "3", "--json")
    wait_for(lambda: log.exists() and log.read_text().count("probing") == 3)  # each probe reads its fact for 2 s
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    document = json.loads(stdout)
    assert document["summary"]["interrupted"] == 3
    for host in ("alpha", "beta", "gamma"):
        entry = document["hosts"][host]
        assert entry["status"] == "interrupted" and entry["errors"] == ["stopped after the probe: nothing was changed"]
        assert entry["round_trips"] == 1
        assert not (tmp_path / host / "etc/slow").exists()
    # Nothing half-done: the next run converges every host as the first one would have.
    again = subprocess.run(["provision", "apply", "-i", str(folder), "--json"], capture_output=True, text=True, check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["summary"]["changed"] == 3
