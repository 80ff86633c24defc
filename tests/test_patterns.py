"""Host patterns against the reference: ``ansible PATTERN --list-hosts``."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from provision.inventory import load_inventory, select_hosts
from tests.conftest import DATA

INVENTORY = DATA / "inventories" / "nested_yaml" / "hosts.yml"
PATTERNS = [
    "all",
    "*",
    "mail",
    "mail_out",
    "mx01.example.net",
    "mail:web",
    "mail,web",
    "mail:!mail_in",
    "mail:&zz_late",
    "mx0*",
    "*.example.net:!web",
    "~mx0[12].*",
    "mail_out[0]",
    "mail_out[1:2]",
    "web:mail_in:!mx-in.example.net",
    "!mail",
    "&mail:web",
]


def ansible_hosts(pattern: str) -> list[str]:
    done = subprocess.run(
        ["ansible", "-i", str(INVENTORY), pattern, "--list-hosts"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_LOCALHOST_WARNING": "False"},
    )
    lines = [line.strip() for line in done.stdout.splitlines()]
    return [line for line in lines if line and not line.startswith("hosts (")]


@pytest.mark.skipif(shutil.which("ansible") is None, reason="ansible-core is a test dependency")
@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_matches_ansible(pattern: str) -> None:
    ours = select_hosts(load_inventory(INVENTORY), pattern)
    assert ours == ansible_hosts(pattern)


def test_unknown_name_matches_nothing() -> None:
    assert select_hosts(load_inventory(INVENTORY), "nosuchhost") == []
