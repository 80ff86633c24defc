"""Our inventory loader against the reference: real ``ansible-inventory``.

Each folder under data/inventories is an inventory source, given to both as
the folder (every inventory file in it, in name order, its sub-folders, its
group_vars/ and host_vars/): scripts, INI, YAML, INI text in a .yml file,
constructed groups, IPv6 hosts, ranges, dates and non-ASCII text. The
``--list`` document (parsed JSON), every host's ``--host`` variables, the
``--graph`` text and host patterns must be Ansible's.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from provision.inventory import load_inventory, select_hosts
from provision.views.inventory import host_document, list_document
from tests.conftest import DATA
from tests.support.ansible_ref import ansible_graph, ansible_inventory, ansible_list_hosts, needs_ansible, provision

INVENTORIES = sorted(p for p in (DATA / "inventories").iterdir() if p.is_dir())
pytestmark = needs_ansible


@functools.cache
def reference_list(folder: Path) -> Any:
    return ansible_inventory(folder, "--list")


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_list_matches_ansible(folder: Path) -> None:
    """The whole --list document, _meta.hostvars and its profile included."""
    done = provision("inventory", "-i", str(folder), "--list")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == reference_list(folder)


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_every_host_matches_ansible(folder: Path) -> None:
    """Every host's variables as --host shows them (Ansible's --list leaves out hosts without any)."""
    inventory = load_inventory(folder)
    assert inventory.hosts, "fixture has hosts"
    expected = reference_list(folder)["_meta"]["hostvars"]
    ours = list_document(inventory, set(), show_secrets=True)["_meta"]["hostvars"]
    assert ours == expected
    for host in inventory.hosts:
        assert host in expected or host_document(inventory, set(), host, show_secrets=True) == {}


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_cli_host_output_matches_ansible(folder: Path) -> None:
    host = next(iter(load_inventory(folder).hosts))
    done = provision("inventory", "-i", str(folder), "--host", host)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ansible_inventory(folder, "--host", host)


@pytest.mark.parametrize("folder", INVENTORIES, ids=lambda p: p.name)
def test_graph_matches_ansible(folder: Path) -> None:
    ours = provision("inventory", "-i", str(folder), "--graph")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == ansible_graph(folder)


def test_graph_of_one_group_matches_ansible() -> None:
    folder = DATA / "inventories" / "folder_mixed"
    groups = [g for g in load_inventory(folder).groups if g not in ("all", "ungrouped")]
    assert len(groups) >= 2
    for group in groups:
        ours = provision("inventory", "-i", str(folder), "--graph", group)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout.strip() == ansible_graph(folder, group), group
    unknown = provision("inventory", "-i", str(folder), "--graph", "nosuch")
    assert unknown.returncode == 2 and "no group of that name" in unknown.stderr


def test_non_ascii_is_printed_as_text() -> None:
    folder = DATA / "inventories" / "ipv6_ranges"
    done = provision("inventory", "-i", str(folder), "--host", "cal1.example.com")
    assert '"label": "Größe – ½"' in done.stdout and "\\u" not in done.stdout


PATTERNS = [
    ("ipv6_ranges", "2001:db8::2"),
    ("ipv6_ranges", "2001:db8::1,mail1.example.com"),
    ("ipv6_ranges", "ranges:&mail*"),
    ("ipv6_ranges", "v6:dated"),
    ("ipv6_ranges", "ranges[1:3]"),
    ("folder_mixed", "web:!cloud"),
    ("folder_mixed", "mail:db"),
    ("constructed", "dc_fra:&web"),
    ("constructed", "roles"),
]


@pytest.mark.parametrize(("name", "pattern"), PATTERNS)
def test_patterns_match_ansible(name: str, pattern: str) -> None:
    folder = DATA / "inventories" / name
    assert select_hosts(load_inventory(folder), pattern) == ansible_list_hosts(folder, pattern)


def test_host_list_source_matches_ansible() -> None:
    """-i 'a,b:2222,[v6]:22,' is a host list, not a file name."""
    source = "web1.example.net,web2.example.net:2222,[2001:db8::5]:2022,2001:db8::6,mail[1:2],"
    done = provision("inventory", "-i", source, "--list")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ansible_inventory(source, "--list")


def test_several_sources_merge_like_ansible() -> None:
    sources: list[str | Path] = [DATA / "inventories" / "ini_in_yml", DATA / "inventories" / "script_no_meta", "extra1,extra2,"]
    done = provision("inventory", *[a for s in sources for a in ("-i", str(s))], "--list")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ansible_inventory(sources, "--list")
