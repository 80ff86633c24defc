"""Inventory values are templates a stranger may write: they render in Jinja's
sandbox, never as code on the controller; a {% raw %} value stays literal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from provision.roles.compiler import Project


def _inventory(make_tree: Callable[[dict[str, str]], Path], variables: dict[str, object], role_files: dict[str, str] | None = None) -> Path:
    return make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    h1:\n",
            "group_vars/all.yml": yaml.safe_dump(variables),
            "site.yml": "- hosts: all\n  roles: [motd]\n",
            **(role_files or {}),
        }
    )


def test_a_group_var_cannot_run_a_command_on_the_controller(make_tree: Callable[[dict[str, str]], Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        f"{{{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}}}",
        f"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}",
        f"x {{{{ ''.__class__.__mro__[1].__subclasses__() }}}} {{{{ lipsum.__globals__.os.system('touch {marker}') }}}}",
    ]
    for payload in payloads:
        folder = _inventory(make_tree, {"motd_message": payload})
        done = subprocess.run(
            [sys.executable, "-m", "provision.cli", "render", "-i", str(folder), "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert not marker.exists(), payload
        assert done.returncode == 1, done.stdout + done.stderr
        assert "unsafe" in done.stderr and "group_vars/all.yml" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_value_cannot_change_what_other_hosts_see(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = _inventory(make_tree, {"shared_list": ["a"], "motd_message": "{{ shared_list.append('injected') }}"})
    project = Project.load(folder)
    try:
        project.compile("h1")
    except Exception as exc:  # refused: the message says why
        assert "unsafe" in str(exc)
    assert project.inventory.host_vars("h1")["shared_list"] == ["a"]


def test_a_raw_value_stays_literal_everywhere_it_is_used(make_tree: Callable[[dict[str, str]], Path]) -> None:
    literal = "{{ 7 * 7 }} {% if true %}x{% endif %}"
    folder = _inventory(
        make_tree,
        {
            "motd_message": "{% raw %}" + literal + "{% endraw %}",
            "motd_lines": ["{{ motd_message }}", "again: {{ motd_message }}"],
        },
    )
    compiled = Project.load(folder).compile("h1")
    assert compiled.variables["motd_message"] == literal
    assert compiled.variables["motd_lines"] == [literal, "again: " + literal]
    motd = compiled.desired.files["/etc/motd"].content.decode()
    assert motd.count(literal) == 3
    assert "49" not in motd
