"""Every bundled role loads, and its README documents each of its variables."""

from __future__ import annotations

import pytest

from provision.roles.loader import RoleLoader, available_roles
from tests.conftest import ROOT

ROLES_DIR = ROOT / "roles"
ROLES = available_roles([ROLES_DIR])


def test_there_are_bundled_roles() -> None:
    assert {"motd", "sshd"} <= set(ROLES)


@pytest.mark.parametrize("name", ROLES)
def test_readme_lists_every_variable(name: str) -> None:
    role = RoleLoader([ROLES_DIR]).get(name)
    readme = (ROLES_DIR / name / "README.md").read_text()
    missing = [v for v in role.variables if f"`{v}`" not in readme]
    assert not missing, f"roles/{name}/README.md does not document {missing}"
    assert all(spec.description for spec in role.variables.values()), "every variable has a description"
