"""No lockout: a setting that denies the account provision logs in as is
refused before anything is pushed, and after a change to a role that guards
the login (sshd), a new login must work or the change is put back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.connectors.base import ConnectionSettings
from provision.engine.runner import RunOptions, run_hosts
from provision.errors import ConnectionFailure, VariableError
from provision.roles.compiler import Project, compile_hosts
from provision.testing.fake import FakeConnector


def _sshd_project(make_tree: Callable[[dict[str, str]], Path], host_vars: dict[str, Any]) -> Project:
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    h1:\n",
            "host_vars/h1.yml": yaml.safe_dump(host_vars),
            "site.yml": "- hosts: all\n  roles: [sshd]\n",
        }
    )
    return Project.load(folder)


@pytest.mark.parametrize("setting", ["no", "forced-commands-only"])
@pytest.mark.parametrize("user", [{"user": "root"}, {"ansible_user": "root"}])
def test_denying_root_login_while_logging_in_as_root_is_refused(
    make_tree: Callable[[dict[str, str]], Path], setting: str, user: dict[str, str]
) -> None:
    project = _sshd_project(make_tree, {**user, "sshd_permit_root_login": setting})
    with pytest.raises(VariableError, match=f"PermitRootLogin {setting} would lock out root, the account provision logs in as on h1"):
        project.compile("h1")


def test_denying_root_is_fine_for_another_account(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = _sshd_project(make_tree, {"user": "admin", "become": True, "sshd_permit_root_login": "no"})
    content = project.compile("h1").desired.files["/etc/ssh/sshd_config.d/provision.conf"].content
    assert b"PermitRootLogin no\n" in content


def test_allow_groups_is_checked_on_the_host_for_the_login_account(make_tree: Callable[[dict[str, str]], Path]) -> None:
    project = _sshd_project(make_tree, {"user": "deploy", "sshd_allow_groups": ["admins", "deploy"]})
    [validator] = [v for v in project.compile("h1").desired.validators if "AllowGroups" in v.description]
    assert "id -Gn deploy" in validator.command and "admins deploy" in validator.command


GATE_ROLE = {
    "roles/gate/role.yml": """
        login_check: true
        variables:
          gate_rule: {type: str, default: allow}
          gate_log: {type: path, required: true}
        files:
          - dest: /etc/gate.conf
            content: "{{ gate_rule }}\\n"
            notify: [reload gate]
        handlers:
          - name: reload gate
            command: "echo reloaded >> {{ gate_log }}"
    """,
    "site.yml": "- hosts: all\n  roles: [gate]\n",
}


class GatedHost(FakeConnector):
    """A host whose login is refused while /etc/gate.conf says deny (what a bad sshd_config does)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        super().__init__(settings)
        gate = Path(settings.root) / "etc/gate.conf"
        if gate.exists() and gate.read_text().strip() == "deny":
            raise ConnectionFailure(f"authentication to {settings.host} as root failed: Authentication failed.")


def test_a_change_that_locks_the_login_out_is_put_back(
    tmp_path: Path, make_tree: Callable[[dict[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("provision.engine.converge.LOGIN_PATIENCE", 0.5)
    root, log = tmp_path / "h1", tmp_path / "gate.log"
    root.mkdir()
    folder = make_tree(
        {
            **GATE_ROLE,
            "hosts.yml": f"all:\n  vars:\n    connection: local\n    gate_log: {log}\n  hosts:\n    h1: {{provision_root: {root}}}\n",
        }
    )

    def apply(**values: Any) -> Any:
        project = Project.load(folder)
        project.inventory.groups["all"].vars.update(values)
        compiled = compile_hosts(project, ["h1"], None)
        [result] = run_hosts(compiled, RunOptions(), factory=GatedHost)
        return result

    assert apply().status == "changed"
    locked = apply(gate_rule="deny")
    assert locked.status == "failed"
    error = locked.errors[0]
    assert "a new SSH login as the run's own user failed (authentication to" in error
    assert "the previous files were put back" in error and "reload gate (exit 0)" in error and "a new login works again" in error
    assert (root / "etc/gate.conf").read_text() == "allow\n"
    assert log.read_text().count("reloaded") == 3  # first apply, the change, the revert
    assert apply().status == "ok"
