"""A user's mistake: one clear line naming file and line, exit 1, no traceback,
and nothing pushed to any host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from provision.cli import main
from tests.fixtures import svc_project


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Path:
    (tmp_path / "root").mkdir()
    return make_tree(svc_project(str(tmp_path / "root"), str(tmp_path / "root2"), str(tmp_path / "log")))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_user_error(project: Path, *expected: str) -> str:
    code, _, err = run("apply", "-i", str(project))
    assert code == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    # nothing was pushed: the host's root is still empty
    assert not any((project.parent / "root").iterdir())
    return err


def test_bad_yaml_names_file_line_and_column(project: Path) -> None:
    (project / "host_vars").mkdir()
    (project / "host_vars" / "alpha.yml").write_text("svc_port: 25\nsvc_banner: [unclosed\n")
    err = assert_user_error(project)
    assert f"{project / 'host_vars' / 'alpha.yml'}:3:1:" in err or f"{project / 'host_vars' / 'alpha.yml'}:2:" in err


def test_unknown_role_suggests_the_close_name(project: Path) -> None:
    (project / "site.yml").write_text("- hosts: all\n  roles: [svd]\n")
    assert_user_error(project, "unknown role 'svd'", "did you mean 'svc'?")


def test_unknown_variable_names_its_file_and_suggests(project: Path) -> None:
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_prot: 25\n")
    assert_user_error(project, f"{project / 'group_vars' / 'all.yml'}:1:1", "unknown variable 'svc_prot'", "did you mean 'svc_port'?")


def test_wrong_type_names_variable_file_and_expectation(project: Path) -> None:
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("# ports\nsvc_port: twenty-five\n")
    assert_user_error(project, f"{project / 'group_vars' / 'all.yml'}:2:1", "svc_port", "a port number")


def test_list_element_of_wrong_type_is_named(project: Path) -> None:
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_listen: [127.0.0.1, not-an-ip]\n")
    assert_user_error(project, "svc_listen[1]", "an IPv4 address")


def test_newline_in_a_config_value_is_refused(project: Path) -> None:
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text('svc_banner: "hi\\nport=1"\n')
    assert_user_error(project, "svc_banner", "newline")


def test_undefined_template_variable_names_template_and_line(project: Path) -> None:
    template = project / "roles" / "svc" / "templates" / "svc.conf.j2"
    template.write_text("# header\nport={{ svc_port }}\nextra={{ svc_missing }}\n")
    assert_user_error(project, f"{template}:3", "svc_missing", "undefined")


def test_template_syntax_error_names_template_and_line(project: Path) -> None:
    template = project / "roles" / "svc" / "templates" / "svc.conf.j2"
    template.write_text("port={{ svc_port }}\n{% if %}\n")
    assert_user_error(project, f"{template}:2", "syntax")


def test_missing_required_variable(project: Path) -> None:
    hosts = project / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("svc_log:", "other_log:"))
    assert_user_error(project, "needs variable 'svc_log'")


def test_limit_matching_nothing(project: Path) -> None:
    code, _, err = run("check", "-i", str(project), "--limit", "nosuch")
    assert code == 1 and "matches no host" in err


def test_unknown_inventory_path(tmp_path: Path) -> None:
    code, _, err = run("check", "-i", str(tmp_path / "nope"))
    assert code == 1 and "no such inventory" in err


def test_yaml_is_safe_loaded(project: Path) -> None:
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_banner: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert_user_error(project, "all.yml")
