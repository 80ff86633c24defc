"""Variables that refer to other variables, as in Ansible: each is resolved
after the ones it refers to, whatever the order or depth, and a circle is
named."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from provision.errors import VariableError
from provision.roles.compiler import Project
from tests.conftest import ROOT


def _project(make_tree: Callable[[dict[str, str]], Path], variables: dict[str, object]) -> Project:
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    h1:\n",
            "group_vars/all.yml": yaml.safe_dump(variables),
            "site.yml": "- hosts: all\n  roles: [motd]\n",
        }
    )
    return Project.load(folder)


def test_a_reference_to_a_templated_list_sees_the_list(make_tree: Callable[[dict[str, str]], Path]) -> None:
    # 'a' is rendered in a context where 'b' is still its own template unless
    # references are resolved first: then a[0] would be '{', not the address.
    project = _project(
        make_tree,
        {"a": "{{ b[0] }}", "b": "{{ c | default(['192.0.2.7', '192.0.2.8']) }}", "d": "x-{{ a }}-{{ b[1] }}"},
    )
    values = project.variables("h1", project.host_roles("h1"))[0]
    assert values["b"] == ["192.0.2.7", "192.0.2.8"]
    assert values["a"] == "192.0.2.7"
    assert values["d"] == "x-192.0.2.7-192.0.2.8"


def test_a_circle_of_references_is_named(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = _project(make_tree, {"a": "{{ b }}", "b": "{{ c }}", "c": "{{ a }}"})
    with pytest.raises(VariableError, match=r"refers to itself through other variables \(a -> b -> c -> a\)"):
        project.variables("h1", project.host_roles("h1"))


def test_an_error_names_the_variable_that_is_wrong(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = _project(make_tree, {"a": "{{ b }}", "b": "{{ nosuch }}"})
    with pytest.raises(VariableError, match="'nosuch' is undefined") as raised:
        project.variables("h1", project.host_roles("h1"))
    assert raised.value.location is not None and raised.value.location.file.endswith("group_vars/all.yml")
    assert "variable 'b'" in raised.value.message


def test_the_bundled_example_renders_without_a_lab(tmp_path: Path) -> None:
    """Render needs no host: the example stands alone (documentation addresses)."""
    done = subprocess.run(
        ["provision", "render", "-i", str(ROOT / "inventories" / "example"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "inet_interfaces = 192.0.2.1" in (tmp_path / "out/example-1/etc/postfix/main.cf").read_text()
    assert "smtp_bind_address=198.51.100.3" in (tmp_path / "out/example-2/etc/postfix/master.cf").read_text()
