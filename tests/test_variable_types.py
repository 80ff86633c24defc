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
