"""The fstab role on a real Debian host: managed lines change, unmanaged lines
survive byte for byte, a tmpfs entry is mounted with its options."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provision.lab.lab import Lab
from tests.support.lab import module_lab, run_roles

pytestmark = pytest.mark.lab
UNMANAGED = (
    "# /etc/fstab: written by hand, not by provision\n"
    "UUID=aaaa-1111 /               ext4    errors=remount-ro 0       1\n"
    "\n"
    "proc  /proc  proc  defaults  0  0   \n"
)


fs_lab = module_lab("fstab", 1)


def apply(lab: Lab, tmp_path: Path, entries: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return run_roles(lab, tmp_path, ["fstab"], {"fstab-1": {"fstab_entries": entries}})


def sh(lab: Lab, command: str) -> str:
    code, output = lab.exec("fstab-1", ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def test_entries_added_changed_removed_and_mounted(fs_lab: Lab, tmp_path: Path) -> None:
    sh(fs_lab, f"printf '%s' '{UNMANAGED}' > /etc/fstab")
    cache = {"device": "tmpfs", "mount_point": "/mnt/cache", "fstype": "tmpfs", "options": ["size=1m", "mode=0750"], "mount": True}
    spaced = {"device": "tmpfs", "mount_point": "/mnt/my data", "fstype": "tmpfs", "options": ["size=2m"]}
    first = apply(fs_lab, tmp_path, [cache, spaced])
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["hosts"]["fstab-1"]["handlers"] == ["mount fstab entries"]
    fstab = sh(fs_lab, "cat /etc/fstab")
    assert fstab.startswith(UNMANAGED)
    assert "tmpfs\t/mnt/cache\ttmpfs\tsize=1m,mode=0750\t0\t0\n" in fstab and "/mnt/my\\040data" in fstab
    assert "size=1024k,mode=750" in sh(fs_lab, "findmnt -no OPTIONS /mnt/cache")

    again = json.loads(apply(fs_lab, tmp_path, [cache, spaced]).stdout)["hosts"]["fstab-1"]
    assert again["status"] == "ok" and again["round_trips"] == 1

    cache["options"] = ["size=4m", "mode=0700"]
    changed = apply(fs_lab, tmp_path, [cache, {**spaced, "state": "absent"}])
    assert changed.returncode == 0, changed.stdout
    fstab = sh(fs_lab, "cat /etc/fstab")
    assert fstab.startswith(UNMANAGED) and "my\\040data" not in fstab and "size=4m,mode=0700" in fstab
    # A remount applies what the filesystem lets change while mounted (tmpfs: size, not mode).
    assert "size=4096k" in sh(fs_lab, "findmnt -no OPTIONS /mnt/cache")

    removed = apply(fs_lab, tmp_path, [{**cache, "state": "absent"}])
    assert removed.returncode == 0
    assert sh(fs_lab, "cat /etc/fstab") == UNMANAGED
    assert sh(fs_lab, "findmnt /mnt/cache || echo unmounted").strip() == "unmounted"


def test_bad_entries_are_refused_before_push(fs_lab: Lab, tmp_path: Path) -> None:
    before = sh(fs_lab, "sha256sum /etc/fstab")
    bad: list[tuple[list[dict[str, Any]], str]] = [
        ([{"device": "/dev/sdb1", "mount_point": "/srv", "fstype": "ext4", "pass": 1}], "pass 1 is only for /, not /srv"),
        ([{"device": "/dev/sda5", "mount_point": "/swapfile", "fstype": "swap"}], "swap needs mount point none"),
        (
            [{"device": "tmpfs", "mount_point": "/a", "fstype": "tmpfs"}, {"device": "tmpfs", "mount_point": "/a", "fstype": "tmpfs"}],
            "mount_point '/a' is used twice",
        ),
        ([{"device": "tmpfs", "mount_point": "relative/path", "fstype": "tmpfs"}], "mount_point: must match"),
    ]
    for entries, message in bad:
        done = apply(fs_lab, tmp_path, entries)
        assert done.returncode == 1 and message in done.stderr, done.stderr
    assert sh(fs_lab, "sha256sum /etc/fstab") == before


def test_findmnt_refuses_a_broken_entry_on_the_host(fs_lab: Lab, tmp_path: Path) -> None:
    before = sh(fs_lab, "cat /etc/fstab")
    # A mistyped UUID: findmnt finds no such filesystem for a mount needed at boot.
    done = apply(fs_lab, tmp_path, [{"device": "UUID=0000-dead", "mount_point": "/srv/data", "fstype": "ext4", "pass": 2}])
    assert done.returncode == 1
    error = json.loads(done.stdout)["hosts"]["fstab-1"]["errors"][0]
    assert "findmnt --verify" in error and "/srv/data: [E] unreachable on boot required source: UUID=0000-dead" in error
    assert sh(fs_lab, "cat /etc/fstab") == before
