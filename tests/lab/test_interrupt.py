"""Ctrl-C over real SSH: ``provision apply`` on two lab hosts and ``provision
onboard`` of a bare one stop within moments, say where each host is, exit
130, and leave each host as it was or as declared (the next run or check
shows which)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.lab.lab import Lab
from tests.support.lab import module_lab

pytestmark = pytest.mark.lab

stop_lab = module_lab("stop", 3)
SLOW_ROLE = """\
description: A file and a handler that takes a while.
files:
  - dest: /etc/slow/slow.conf
    content: "slow\\n"
    notify: [slow handler]
handlers:
  - name: slow handler
    command: "echo started >> /var/log/slow.log; sleep 15; echo done >> /var/log/slow.log"
"""


def provision(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["provision", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )


def wait_for(test: Callable[[], bool], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def host_log(lab: Lab, host: str) -> str:
    return lab.exec(host, ["sh", "-c", "cat /var/log/slow.log 2>/dev/null || true"])[1]


def test_ctrl_c_during_apply_lets_the_commit_finish_on_the_host_and_starts_no_other(stop_lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "roles/slow").mkdir(parents=True)
    (tmp_path / "roles/slow/role.yml").write_text(SLOW_ROLE)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"stop-1": None, "stop-2": None}}}))
    (tmp_path / "site.yml").write_text("- hosts: all\n  roles: [slow]\n")
    args = ["-i", str(tmp_path), "-i", str(stop_lab.inventory_file), "--limit", "stop-1:stop-2"]
    run = provision("apply", *args, "--forks", "1")
    wait_for(lambda: "started" in host_log(stop_lab, "stop-1") + host_log(stop_lab, "stop-2"))
    first = "stop-1" if "started" in host_log(stop_lab, "stop-1") else "stop-2"
    other = "stop-2" if first == "stop-1" else "stop-1"
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert "done" not in host_log(stop_lab, first)  # it stopped while the handler still ran
    assert run.returncode == 130, stdout + stderr
    assert f"{first}: interrupted: let go while it committed: the host finishes the commit and its handlers by itself" in stdout
    assert f"{other}: interrupted: not started: nothing was asked of the host" in stdout
    # The host finished the commit by itself (the handler ran to its end), and is as declared.
    wait_for(lambda: "done" in host_log(stop_lab, first), 60)
    check = subprocess.run(["provision", "check", *args, "--json"], capture_output=True, text=True, check=False, timeout=300)
    hosts = yaml.safe_load(check.stdout)["hosts"]
    assert hosts[first]["status"] == "ok" and hosts[other]["status"] == "changed"
    assert stop_lab.exec(other, ["test", "-e", "/etc/slow"])[0] != 0


def test_ctrl_c_during_onboarding_stops_that_step_and_exits_130(stop_lab: Lab, tmp_path: Path) -> None:
    host = stop_lab.host("stop-3")
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    mail:\n      hosts: {}\n")
    (tmp_path / "site.yml").write_text("- hosts: mail\n  roles: [postfix]\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars/mail.yml").write_text('postfix_inet_interfaces: ["{{ ansible_host }}"]\n')
    args = ["onboard", "mx9.example.test", "-i", str(tmp_path), "--group", "mail", "--address", host.extra_addresses[0]]
    args += [
        "--ssh-host",
        host.address,
        "--ssh-user",
        "root",
        "--ssh-key",
        str(stop_lab.key_file),
        "--known-hosts",
        str(stop_lab.known_hosts),
    ]
    run = provision(*args)
    assert run.stdout is not None
    for line in run.stdout:
        if "3/6 converge" in line:
            break
    time.sleep(1.0)  # the probe has been answered; the staging installs Postfix
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stdout + stderr
    assert stderr.startswith("interrupted: converge: mx9.example.test: ") and "Traceback" not in stderr
    assert "run the same command again to continue from the converge step" in stderr
    assert "4/6 verify" not in stdout
    # No Postfix configuration was written: the commit never started.
    assert "provision" not in stop_lab.exec("stop-3", ["sh", "-c", "cat /etc/postfix/main.cf 2>/dev/null || true"])[1]
