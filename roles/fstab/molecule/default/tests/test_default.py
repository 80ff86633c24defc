"""The fstab entry is written, verifies, and is what is mounted.

Runs under ``provision test fstab`` (testinfra's docker:// backend).
"""

from __future__ import annotations

from typing import Any


def test_the_entry_is_in_fstab_and_verifies(host: Any) -> None:
    lines = [line.split() for line in host.file("/etc/fstab").content_string.splitlines() if line and not line.startswith("#")]
    assert ["tmpfs", "/mnt/scenario", "tmpfs", "size=8m,mode=0750", "0", "0"] in lines
    assert host.run("findmnt --verify --tab-file /etc/fstab").rc == 0


def test_the_entry_is_mounted(host: Any) -> None:
    mount = host.mount_point("/mnt/scenario")
    assert mount.exists and mount.filesystem == "tmpfs"
    assert "size=8192k" in mount.options
    assert host.file("/mnt/scenario").mode == 0o750
