"""The addresses role compiled on the controller: the interfaces.d file, the
validator that refuses a transport bound to a missing address, and its rules.
(tests/lab/test_sending_reputation.py applies it to a real host.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.errors import ProvisionError
from provision.roles.compiler import CompiledHost, Project

HOST = "mx1.example.net"


@pytest.fixture
def compile_with(make_tree: Callable[[dict[str, str]], Path]) -> Callable[[list[str], dict[str, Any]], CompiledHost]:
    def compile_host(roles: list[str], host_vars: dict[str, Any]) -> CompiledHost:
        folder = make_tree(
            {
                "hosts.yml": f"all:\n  hosts:\n    {HOST}:\n",
                f"host_vars/{HOST}.yml": yaml.safe_dump(host_vars),
                "site.yml": f"- hosts: all\n  roles: [{', '.join(roles)}]\n",
            }
        )
        return Project.load(folder).compile(HOST)

    return compile_host


def test_one_stanza_per_address_and_a_validator_with_every_bound_address(
    compile_with: Callable[[list[str], dict[str, Any]], CompiledHost],
) -> None:
    compiled = compile_with(
        ["addresses", "postfix"],
        {
            "addresses_interface": "ens3",
            "addresses_extra": [{"address": "192.0.2.11"}, {"address": "2001:db8::12", "prefix": 64, "interface": "ens4"}],
            "postfix_transports": [{"name": "out1", "bind_address": "192.0.2.11"}],
            "postfix_instances": [
                {"name": "postfix-b", "inet_interfaces": ["192.0.2.9"], "transports": [{"name": "b1", "bind_address": "192.0.2.13"}]}
            ],
        },
    )
    text = compiled.desired.files["/etc/network/interfaces.d/provision-addresses"].content.decode()
    assert "\niface ens3 inet static\n    address 192.0.2.11/32\n" in text
    assert "\niface ens4 inet6 static\n    address 2001:db8::12/64\n" in text
    assert compiled.desired.files["/etc/network/interfaces.d/provision-addresses"].notify == ("apply addresses",)
    checks = [v for v in compiled.desired.validators if v.role == "addresses"]
    assert [v.files[-1] for v in checks] == ["/etc/postfix/master.cf", "/etc/postfix-b/master.cf"]
    assert all(v.command.endswith("--bound 192.0.2.11 192.0.2.13") for v in checks)


def test_one_address_written_two_ways_is_refused(compile_with: Callable[[list[str], dict[str, Any]], CompiledHost]) -> None:
    # Both would be added by `ip addr add`; the second fails ("File exists") and the handler with it.
    with pytest.raises(ProvisionError, match=r"'2001:DB8:0::12' are the same address"):
        compile_with(["addresses"], {"addresses_extra": [{"address": "2001:db8::12"}, {"address": "2001:DB8:0::12"}]})


def test_addresses_must_come_before_postfix(compile_with: Callable[[list[str], dict[str, Any]], CompiledHost]) -> None:
    with pytest.raises(ProvisionError, match="must come before postfix"):
        compile_with(["postfix", "addresses"], {"addresses_extra": [{"address": "192.0.2.11"}]})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"address": "192.0.2.300"}, r"addresses_extra\[0\]\.address"),
        ({"address": "192.0.2.1", "prefix": 33}, "prefix of 32 at most"),
        ({"address": "192.0.2.1", "interface": "eth0\nup reboot"}, r"addresses_extra\[0\]\.interface"),
        ({"address": "192.0.2.1", "interface": "eth0 inet"}, r"addresses_extra\[0\]\.interface"),
        # An ifupdown alias label: `ip addr add ... dev eth0:1` finds no such device.
        ({"address": "192.0.2.1", "interface": "eth0:1"}, r"addresses_extra\[0\]\.interface: expected a network interface name"),
        ({"address": "192.0.2.1", "interface": "eth0=home"}, r"addresses_extra\[0\]\.interface"),
        ({"address": "192.0.2.1", "interface": "."}, r"addresses_extra\[0\]\.interface"),
        # Python takes any text after an IPv6 zone's %: here a second word of the stanza.
        ({"address": "fe80::1%lo static"}, r"addresses_extra\[0\]\.address: .*zone index"),
    ],
)
def test_bad_entries_are_refused(
    compile_with: Callable[[list[str], dict[str, Any]], CompiledHost], entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProvisionError, match=message):
        compile_with(["addresses"], {"addresses_extra": [entry]})


# --- the host-side script, with an `ip` that keeps its addresses in a file -------------

FAKE_IP = """#!/usr/bin/env python3
import json, os, sys
state = os.environ["FAKE_IP_STATE"]
have = json.load(open(state)) if os.path.exists(state) else {}
args = sys.argv[1:]
if args[:3] == ["-o", "addr", "show"]:
    for n, (address, dev) in enumerate(sorted(have.items())):
        print("%d: %s    inet %s scope global %s" % (n, dev, address, dev))
    sys.exit(0)
verb, address, dev = args[1], args[2], args[4]
if verb == "add":
    if dev not in ("lo", "eth0"):
        print('Cannot find device "%s"' % dev)
        sys.exit(1)
    have[address] = dev
else:
    have.pop(address, None)
json.dump(have, open(state, "w"))
"""


def run_script(tmp_path: Path, stanzas: list[tuple[str, str]]) -> int:
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "roles" / "addresses" / "files" / "provision-addresses"
    managed = tmp_path / "provision-addresses"
    managed.write_text("".join(f"iface {dev} inet static\n    address {address}\n" for dev, address in stanzas))
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    (tools / "ip").write_text(FAKE_IP)
    (tools / "ip").chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "FAKE_IP_STATE": str(tmp_path / "ip.json")}
    command = [sys.executable, str(script), "apply", "--file", str(managed), "--state", str(tmp_path / "applied.json")]
    return subprocess.run(command, env=env, check=False, capture_output=True).returncode


def test_an_apply_whose_add_fails_removes_no_address_and_the_previous_file_puts_everything_back(tmp_path: Path) -> None:
    """Transports bound to the old addresses keep them while the commit rolls back (issue 20's script)."""
    import json

    old = [("lo", "127.89.3.1/32"), ("lo", "127.89.3.2/32")]
    assert run_script(tmp_path, old) == 0
    # The new file drops .2 and adds .3 on an interface that does not exist.
    assert run_script(tmp_path, [("lo", "127.89.3.1/32"), ("lo", "127.89.3.4/32"), ("LO", "127.89.3.3/32")]) == 1
    assert set(json.loads((tmp_path / "ip.json").read_text())) == {"127.89.3.1/32", "127.89.3.2/32", "127.89.3.4/32"}
    # The rollback runs apply with the previous file: what the failed run added goes again.
    assert run_script(tmp_path, old) == 0
    assert set(json.loads((tmp_path / "ip.json").read_text())) == {"127.89.3.1/32", "127.89.3.2/32"}
