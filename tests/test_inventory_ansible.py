"""Our inventory loader against the reference: real ``ansible-inventory``.

Each folder under data/inventories is loaded by both; the merged variables
of every host and the group structure must be the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from provision.inventory import find_inventory_file, load_inventory
from provision.views.inventory import list_document
from tests.conftest import DATA

INVENTORIES = sorted(p for p in (DATA / "inventories").iterdir() if p.is_dir())
pytestmark = pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-core is a test dependency")


def ansible_inventory(path: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(
        ["ansible-inventory", "-i", str(path), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False"},
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_list_matches_ansible(folder: Path) -> None:
    source = find_inventory_file(folder)
    expected = ansible_inventory(source, "--list")
    meta = expected.pop("_meta")
    assert isinstance(meta, dict)
    ours = list_document(load_inventory(source), set(), show_secrets=True)
    our_meta = ours.pop("_meta")
    assert ours == expected
    assert our_meta["hostvars"] == meta["hostvars"]


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_every_host_matches_ansible(folder: Path) -> None:
    source = find_inventory_file(folder)
    inventory = load_inventory(source)
    assert inventory.hosts, "fixture has hosts"
    for host in inventory.hosts:
        assert inventory.host_vars(host) == ansible_inventory(source, "--host", host), host


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_cli_host_output_matches_ansible(folder: Path) -> None:
    source = find_inventory_file(folder)
    host = next(iter(load_inventory(source).hosts))
    done = subprocess.run(["provision", "inventory", "-i", str(folder), "--host", host], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == ansible_inventory(source, "--host", host)


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_graph_matches_ansible(folder: Path) -> None:
    source = find_inventory_file(folder)
    expected = subprocess.run(["ansible-inventory", "-i", str(source), "--graph"], capture_output=True, text=True, check=True)
    ours = subprocess.run(["provision", "inventory", "-i", str(source), "--graph"], capture_output=True, text=True, check=True)
    assert ours.stdout.strip() == expected.stdout.strip()
