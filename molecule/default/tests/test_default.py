"""Verifies the default scenario (motd and sshd) on the converged host.

Runs under ``provision test`` (testinfra's docker:// backend) and under
``molecule verify`` (testinfra through molecule's inventory, over SSH).
"""

from __future__ import annotations

from typing import Any


def test_motd(host: Any) -> None:
    motd = host.file("/etc/motd")
    assert motd.user == "root" and motd.group == "root" and motd.mode == 0o644
    assert "molecule scenario host" in motd.content_string
    assert "line one\nline two\n" in motd.content_string


def test_sshd_drop_in_is_live(host: Any) -> None:
    drop_in = host.file("/etc/ssh/sshd_config.d/provision.conf")
    assert drop_in.mode == 0o644
    assert "AllowGroups root admins" in drop_in.content_string
    effective = host.run("/usr/sbin/sshd -T -C user=root,host=x,addr=127.0.0.1")
    assert effective.rc == 0
    settings = dict(line.split(" ", 1) for line in effective.stdout.splitlines() if " " in line)
    assert settings["maxauthtries"] == "3"
    assert settings["passwordauthentication"] == "no"
    assert settings["banner"] == "/etc/ssh/provision-banner"


def test_sshd_runs(host: Any) -> None:
    assert host.process.filter(comm="sshd")
    assert host.package("openssh-server").is_installed
