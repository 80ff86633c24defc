"""The drop-in is what sshd runs with (sshd -T), and sshd still runs.

Runs under ``provision test sshd`` (testinfra's docker:// backend).
"""

from __future__ import annotations

from typing import Any


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
    assert host.file("/etc/ssh/provision-banner").content_string == "Authorised access only.\n"


def test_sshd_runs(host: Any) -> None:
    assert host.process.filter(comm="sshd")
    assert host.package("openssh-server").is_installed
