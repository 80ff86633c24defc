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
