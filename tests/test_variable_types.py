"""Address and port types, Ansible's conversions, and errors that point at
the nested field's own line (issue 14, point 3 and the small things)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provision.errors import VariableError
from provision.roles.compiler import Project
from provision.roles.variables import VariableSpec, VariableValueError, check_value


def check(kind: str, value: Any, **spec: Any) -> Any:
    return check_value(value, VariableSpec("v", type=kind, **spec))


@pytest.mark.parametrize(
    ("kind", "value", "result"),
    [
        ("listen", "80", "80"),
        ("listen", 8080, "8080"),
        ("listen", "192.0.2.1:80", "192.0.2.1:80"),
        ("listen", "[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("address_port", "*:80", "*:80"),
        ("address_port", "192.0.2.1:8443", "192.0.2.1:8443"),
        ("inet_interface", "all", "all"),
        ("inet_interface", "loopback-only", "loopback-only"),
        ("inet_interface", "192.0.2.1", "192.0.2.1"),
        ("inet_interface", "[2001:db8::1]", "[2001:db8::1]"),
        ("inet_interface", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_addresses_and_ports_accepted(kind: str, value: Any, result: Any) -> None:
    assert check(kind, value) == result


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("listen", "127.155.36.999:80", "'127.155.36.999' is not an IP address"),
        ("listen", "192.0.2.1:99999", "the port must be 1 to 65535"),
        ("listen", "0", "the port must be 1 to 65535"),
        ("listen", "*:80", "'*' is not an IP address"),
        ("listen", "2001:db8::1:443", "write an IPv6 address in brackets"),
        ("listen", "mail.example.net:25", "'mail.example.net' is not an IP address"),
        ("listen", "80\nListen 8080", "newline"),
        ("address_port", "80", "no address"),
        ("address_port", "*:99999", "the port must be 1 to 65535"),
        ("inet_interface", "127.155.36.1.5", "an IPv4 or IPv6 address"),
        ("inet_interface", "[192.0.2.1]", "brackets are for IPv6"),
        ("inet_interface", "all, 192.0.2.1", "an IPv4 or IPv6 address"),
        ("port", 99999, "port number"),
        ("port", "http", "port number"),
    ],
)
def test_addresses_and_ports_refused(kind: str, value: Any, reason: str) -> None:
    with pytest.raises(VariableValueError) as caught:
        check(kind, value)
    assert reason in caught.value.message


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        # Python's ipaddress takes an IPv6 zone index with any text after "%":
        # a space (two words in a config), "#" (a comment), "$" (Postfix expansion).
        ("ip", "fe80::1%eth0 inet static"),
        ("ip", "fe80::1%x#y"),
        ("ipv6", "fe80::1%$myhostname"),
        ("cidr", "fe80::%a b/64"),
        ("listen", "[fe80::1%a b]:80"),
        ("address_port", "[fe80::1%x]:443"),
        ("inet_interface", "fe80::1%eth0"),
    ],
)
def test_an_ipv6_zone_index_is_refused(kind: str, value: str) -> None:
    with pytest.raises(VariableValueError) as caught:
        check(kind, value)
    assert "zone index" in caught.value.message or "not an IP address" in caught.value.message or "an IPv4 or IPv6" in caught.value.message


@pytest.mark.parametrize("value", ["eth0", "ens3", "lo", "eth0.100", "br-lan_2", "wg0", "a" * 15])
def test_interface_names_accepted(value: str) -> None:
    assert check("interface", value) == value


@pytest.mark.parametrize(
    "value",
    ["eth0:1", "eth0 inet", "eth0=home", "-eth0", ".", "..", "a/b", "a" * 16, "eth0#x", "", "eth0\\"],
)
def test_interface_names_refused(value: str) -> None:
    # eth0:1 is an ifupdown alias label: `ip addr add ... dev eth0:1` finds no such device.
    with pytest.raises(VariableValueError, match="network interface name"):
        check("interface", value)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("example.net", True),
        ("Mail.Example.NET", True),
        ("x-1.example", True),
        ("example.net.", False),  # SigningTable's *@example.net. never matches a From: address
        ("_dmarc.example.net", False),
        ("ex ample.net", False),
        ("-x.example.net", False),
        ("example..net", False),
        ("%", False),  # KeyTable's % is the message's own domain
    ],
)
def test_domain_names(value: str, accepted: bool) -> None:
    if accepted:
        assert check("domain", value) == value
    else:
        with pytest.raises(VariableValueError, match="domain name without a trailing dot"):
            check("domain", value)


@pytest.mark.parametrize(("value", "accepted"), [("mx1.example.net", True), ("MX1", True), ("mx1.example.net.", False), (".", False)])
def test_host_names_have_no_trailing_dot(value: str, accepted: bool) -> None:
    # myhostname "mx1.example.net." puts mail for mx1.example.net outside mydestination; ServerName and a CN miss too.
    if accepted:
        assert check("hostname", value) == value
    else:
        with pytest.raises(VariableValueError, match="host name without a trailing dot"):
            check("hostname", value)


def test_unique_addresses_compare_by_value() -> None:
    spec = VariableSpec(
        "v",
        type="list",
        unique_by="address",
        elements=VariableSpec("e", type="dict", options={"address": VariableSpec("address", type="ip")}),
    )
    with pytest.raises(
        VariableValueError,
        match=r"'2001:DB8:0::1' is used twice \(items 0 and 1\) \('2001:db8::1' and '2001:DB8:0::1' are the same address\)",
    ):
        check_value([{"address": "2001:db8::1"}, {"address": "2001:DB8:0::1"}], spec)
    assert len(check_value([{"address": "2001:db8::1"}, {"address": "2001:db8::2"}], spec)) == 2


def test_ansible_conversions() -> None:
    # As Ansible's argument_spec: check_type_int, check_type_float, check_type_bool, check_type_list.
    assert check("int", "500") == 500 and check("int", " 12 ") == 12 and check("int", 3.0) == 3
    assert check("int", "500", minimum=1, maximum=1000) == 500
    assert check("port", "8080") == 8080
    assert check("float", "1.5") == 1.5
    assert (check("bool", "yes"), check("bool", "Off"), check("bool", 1)) == (True, False, True)
    assert check("list", "a, b") == ["a", "b"] and check("list", "a") == ["a"] and check("list", "") == []
    assert check("list", 5) == ["5"]
    assert check("list", "25, 587", elements=VariableSpec("v[]", type="port")) == [25, 587]
    assert check("int", "2", choices=[0, 1, 2]) == 2
    for kind, value in (("int", "5x"), ("int", 3.5), ("int", True), ("bool", "maybe"), ("list", {"a": 1})):
        with pytest.raises(VariableValueError):
            check(kind, value)


APACHE_SITE = "- hosts: all\n  roles: [apache]\n"


def compile_error(make_tree: Callable[[dict[str, str]], Path], files: dict[str, str]) -> str:
    folder = make_tree({"hosts.yml": "all:\n  hosts:\n    web1:\n      host: 192.0.2.80\n", **files})
    with pytest.raises(VariableError) as caught:
        Project.load(folder).compile("web1")
    return str(caught.value)


def test_a_nested_field_points_at_its_own_line(make_tree: Callable[[dict[str, str]], Path]) -> None:
    error = compile_error(
        make_tree,
        {
            "site.yml": APACHE_SITE,
            "group_vars/all.yml": """
                apache_vhosts:
                  - server_name: a.example.net
                    document_root: /srv/a
                  - server_name: b.example.net
                    listen: "{{ host }}:99999"
                    document_root: /srv/b
            """,
        },
    )
    assert "group_vars/all.yml:5:5: variable apache_vhosts[1].listen:" in error  # the listen line, not apache_vhosts
    assert "got '192.0.2.80:99999' (the port must be 1 to 65535)" in error


def test_a_list_item_points_at_its_own_line(make_tree: Callable[[dict[str, str]], Path]) -> None:
    error = compile_error(make_tree, {"site.yml": APACHE_SITE, "host_vars/web1.yml": 'apache_listen:\n  - "80"\n  - "127.155.36.999:80"\n'})
    assert "host_vars/web1.yml:3:5: variable apache_listen[1]:" in error and "'127.155.36.999' is not an IP address" in error


def test_postfix_interfaces_are_addresses(make_tree: Callable[[dict[str, str]], Path]) -> None:
    error = compile_error(
        make_tree,
        {
            "site.yml": "- hosts: all\n  roles: [postfix]\n",
            "host_vars/web1.yml": "postfix_inet_interfaces: [127.0.0.1, 127.155.36.1.5]\n",
        },
    )
    assert "host_vars/web1.yml:1:38: variable postfix_inet_interfaces[1]: expected all, loopback-only, or an IPv4 or IPv6 address" in error


def test_refused_on_the_controller_through_the_command(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    web1: {connection: local, provision_root: /nonexistent/never-used}\n",
            "site.yml": APACHE_SITE,
            "host_vars/web1.yml": "apache_vhosts:\n  - {server_name: a.example.net, document_root: /srv/a, listen: '*:99999'}\n",
        }
    )
    done = subprocess.run(["provision", "check", "-i", str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "host_vars/web1.yml:2:" in done.stderr and "the port must be 1 to 65535" in done.stderr
    assert done.stdout == ""  # no host contacted
