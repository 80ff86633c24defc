"""The fstab merger: declared lines managed, every other byte kept (data-driven)."""

from __future__ import annotations

import pytest

from provision.roles.mergers import fstab_line, merge_fstab

HOST_FSTAB = (
    b"# /etc/fstab: static file system information.\n"
    b"UUID=aaaa-1111 /               ext4    errors=remount-ro 0       1\n"
    b"\n"
    b"# swap was on /dev/sda5 during installation\n"
    b"UUID=bbbb-2222 none            swap    sw              0       0\n"
    b"/dev/sdb1   /old   ext4   defaults  0  2\n"
    b"tmpfs /mnt/cache tmpfs size=1m 0 0   # keep my comment? no: the line is managed\n"
)
TMPFS = {"device": "tmpfs", "mount_point": "/mnt/cache", "fstype": "tmpfs", "options": ["size=2m", "mode=0750"], "dump": 0, "pass": 0}
SPACES = {"device": "/dev/sdc1", "mount_point": "/mnt/my data", "fstype": "ext4", "options": ["defaults"], "dump": 0, "pass": 2}
ABSENT = {"device": "/dev/sdb1", "mount_point": "/old", "fstype": "ext4", "state": "absent"}

CASES = [
    (
        "replace in place",
        [TMPFS],
        HOST_FSTAB.replace(
            b"tmpfs /mnt/cache tmpfs size=1m 0 0   # keep my comment? no: the line is managed\n",
            b"tmpfs\t/mnt/cache\ttmpfs\tsize=2m,mode=0750\t0\t0\n",
        ),
    ),
    ("append", [SPACES], HOST_FSTAB + b"/dev/sdc1\t/mnt/my\\040data\text4\tdefaults\t0\t2\n"),
    ("remove", [ABSENT], HOST_FSTAB.replace(b"/dev/sdb1   /old   ext4   defaults  0  2\n", b"")),
    ("nothing declared", [], HOST_FSTAB),
]


@pytest.mark.parametrize(("name", "entries", "expected"), CASES, ids=[c[0] for c in CASES])
def test_merge(name: str, entries: list[dict[str, object]], expected: bytes) -> None:
    assert merge_fstab(HOST_FSTAB, entries) == expected


def test_merge_is_idempotent() -> None:
    once = merge_fstab(HOST_FSTAB, [TMPFS, SPACES, ABSENT])
    assert merge_fstab(once, [TMPFS, SPACES, ABSENT]) == once


def test_escaped_mount_point_matches_its_line() -> None:
    once = merge_fstab(b"", [SPACES])
    changed = dict(SPACES, options=["noatime"])
    assert merge_fstab(once, [changed]) == fstab_line(changed).encode() + b"\n"


def test_file_without_final_newline_keeps_its_lines() -> None:
    assert merge_fstab(b"proc /proc proc defaults 0 0", [SPACES]).startswith(b"proc /proc proc defaults 0 0\n/dev/sdc1")
