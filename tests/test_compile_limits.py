"""Mistakes caught at compile time, each named where it is: a missing template
(role, file entry, host), a file over its size limit, a role name that is a
path; and --known-hosts on the command line wins over the inventory's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.connectors import settings_from_vars
from provision.errors import ProvisionError, RoleError
from provision.roles.compiler import Project


def _project(make_tree: Callable[[dict[str, str]], Path], role: str, values: dict[str, object] | None = None, roles: str = "[big]") -> Path:
    return make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    web1:\n",
            "host_vars/web1.yml": yaml.safe_dump(values or {}),
            "site.yml": f"- hosts: all\n  roles: {roles}\n",
            "roles/big/role.yml": role,
            "roles/big/templates/ok.j2": "ok\n",
        }
    )


def test_a_missing_template_names_role_file_entry_and_host(make_tree: Callable[[dict[str, str]], Path]) -> None:
    role = "files:\n  - dest: /etc/ok\n    template: ok.j2\n  - dest: /etc/big.conf\n    template: nosuch.j2\n"
    folder = _project(make_tree, role)
    with pytest.raises(ProvisionError) as raised:
        Project.load(folder).compile("web1")
    text = str(raised.value)
    assert text.startswith(f"{folder}/roles/big/role.yml:4:")
    assert "template 'nosuch.j2' not found" in text
    assert "role big" in text and "file /etc/big.conf" in text and "host web1" in text


def test_a_missing_template_chosen_by_a_variable(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _project(make_tree, "{}", {"motd_template": "nosuch.j2"}, roles="[motd]")
    expected = r"roles/motd/role\.yml:\d+:\d+: template 'nosuch.j2' not found \(role motd, file /etc/motd, host web1\)"
    with pytest.raises(ProvisionError, match=expected):
        Project.load(folder).compile("web1")


def test_a_file_over_its_limit_is_refused(make_tree: Callable[[dict[str, str]], Path]) -> None:
    role = "variables:\n  big_count: {type: int, default: 1}\nfiles:\n  - dest: /etc/motd\n    content: '{{ \"x\" * big_count }}'\n"
    folder = _project(make_tree, role, {"big_count": 9 * 1024 * 1024})
    expected = r"role\.yml:4:\d+: the file would hold 9\.0 MiB, more than its limit of 8\.0 MiB \(role big, file /etc/motd"
    with pytest.raises(ProvisionError, match=expected):
        Project.load(folder).compile("web1")
    raised = _project(make_tree, role.replace("content:", "max_size: 16M\n    content:"), {"big_count": 9 * 1024 * 1024})
    assert len(Project.load(raised).compile("web1").desired.files["/etc/motd"].content) == 9 * 1024 * 1024


def test_a_large_source_file_is_refused_before_it_is_read(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _project(make_tree, "files:\n  - dest: /etc/motd\n    src: motd\n    max_size: 1k\n")
    (folder / "roles/big/files").mkdir()
    (folder / "roles/big/files/motd").write_bytes(b"x" * 30_000_000)
    with pytest.raises(ProvisionError, match=r"28\.6 MiB, more than its limit of 1024 bytes"):
        Project.load(folder).compile("web1")


def test_a_bad_max_size_is_named(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _project(make_tree, "files:\n  - dest: /etc/motd\n    content: x\n    max_size: lots\n")
    with pytest.raises(RoleError, match=r"role\.yml:4:\d+: max_size must be a size"):
        Project.load(folder).compile("web1")


@pytest.mark.parametrize("name", ["/etc", "../big", "..", "big/../big", "sub/big"])
def test_a_role_name_that_is_a_path_is_refused(make_tree: Callable[[dict[str, str]], Path], name: str) -> None:
    folder = _project(make_tree, "{}", roles=f"['{name}']")
    (folder / "sub").mkdir()
    (folder / "sub/big").symlink_to(folder / "roles/big")
    with pytest.raises(RoleError, match="is not a plain name"):
        Project.load(folder).compile("web1")


def test_known_hosts_on_the_command_line_wins() -> None:
    values = {"host": "192.0.2.1", "known_hosts": "/inventory/known_hosts"}
    assert settings_from_vars("h", values, {"known_hosts": "/cli/known_hosts"}).options["known_hosts"] == "/cli/known_hosts"
    assert settings_from_vars("h", values, {}).options["known_hosts"] == "/inventory/known_hosts"
