"""What a login shows: /etc/motd and the dynamic part pam_motd runs.

Runs under ``provision test motd`` (testinfra's docker:// backend).
"""

from __future__ import annotations

from typing import Any


def test_motd(host: Any) -> None:
    motd = host.file("/etc/motd")
    assert motd.user == "root" and motd.group == "root" and motd.mode == 0o644
    assert "scenario host" in motd.content_string
    assert "line one\nline two\n" in motd.content_string


def test_dynamic_part_runs(host: Any) -> None:
    part = host.file("/etc/update-motd.d/50-provision")
    assert part.mode == 0o755
    shown = host.run("/etc/update-motd.d/50-provision")
    assert shown.rc == 0 and shown.stdout.strip()
