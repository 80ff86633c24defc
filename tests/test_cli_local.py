"""End to end through the real ``provision`` command with the local connector
into temporary folders: apply, re-apply, drift check, repair, JSON."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import svc_project


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Path:
    return make_tree(svc_project(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "log")))


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False)


def test_apply_reapply_check_repair(project: Path, tmp_path: Path) -> None:
    first = provision("apply", "-i", str(project), "--json")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)  # stdout holds only the JSON document
    assert document["summary"] == {"ok": 0, "changed": 2, "failed": 0, "unreachable": 0}
    assert sorted(document["hosts"]["alpha"]["changed"]) == ["/etc/svc/plain.txt", "/etc/svc/secret.conf", "/etc/svc/svc.conf"]
    assert document["hosts"]["alpha"]["handlers"] == ["reload svc"]

    again = json.loads(provision("apply", "-i", str(project), "--json").stdout)
    assert again["summary"]["changed"] == 0
    assert all(h["round_trips"] == 1 and h["handlers"] == [] for h in again["hosts"].values())

    assert provision("check", "-i", str(project)).returncode == 0
    (tmp_path / "b" / "etc/svc/svc.conf").write_text("port=1\n")
    drift = provision("check", "-i", str(project), "--diff")
    assert drift.returncode == 2
    assert "beta: would change /etc/svc/svc.conf (content)" in drift.stdout
    assert "-port=1" in drift.stdout
    assert "alpha: would change" not in drift.stdout

    quiet = provision("check", "-i", str(project), "--quiet")
    assert (quiet.returncode, quiet.stdout) == (2, "beta: drift: /etc/svc/svc.conf\n")

    repair = provision("apply", "-i", str(project), "--limit", "beta")
    assert repair.returncode == 0
    assert "port=2525" in (tmp_path / "b" / "etc/svc/svc.conf").read_text()
    assert provision("check", "-i", str(project)).returncode == 0
    assert provision("check", "-i", str(project), "-q").stdout == ""


def test_secrets_never_reach_json_or_diff(project: Path) -> None:
    provision("apply", "-i", str(project))
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_password: Sup3r-Secret-Value\n")
    out = provision("check", "-i", str(project), "--diff", "--json")
    assert out.returncode == 2
    assert "Sup3r-Secret-Value" not in out.stdout + out.stderr
    assert "hunter2-secret" not in out.stdout + out.stderr
    shown = provision("inventory", "-i", str(project), "--host", "alpha")
    assert "Sup3r-Secret-Value" not in shown.stdout and json.loads(shown.stdout)["svc_password"] == "********"


def test_render_writes_files_without_touching_hosts(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    done = provision("render", "-i", str(project), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "alpha/etc/svc/svc.conf").read_text().count("port=2525") == 1
    assert (out / "beta/etc/svc/secret.conf").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "a").exists()


def test_roles_lists_variables(project: Path) -> None:
    done = provision("roles", "-i", str(project))
    assert done.returncode == 0
    assert "svc_port" in done.stdout and "motd_message" in done.stdout


def test_tags_limit_what_is_converged(project: Path, tmp_path: Path) -> None:
    site = project / "site.yml"
    site.write_text("- hosts: all\n  roles: [svc, motd]\n")
    done = provision("apply", "-i", str(project), "--tags", "motd", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hosts"]["alpha"]["changed"] == ["/etc/motd", "/etc/update-motd.d/50-provision"]
    assert not (tmp_path / "a/etc/svc").exists()


def test_motd_with_the_users_own_template(project: Path, tmp_path: Path) -> None:
    (project / "site.yml").write_text("- hosts: all\n  roles: [motd]\n")
    (project / "templates").mkdir()
    (project / "templates" / "my-motd.j2").write_text("Welcome to {{ inventory_hostname }} ({{ provision_roles | join(',') }})\n")
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("motd_template: my-motd.j2\nmotd_dynamic: false\n")
    done = provision("apply", "-i", str(project))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "etc/motd").read_text() == "Welcome to alpha (motd)\n"
    assert not (tmp_path / "a" / "etc/update-motd.d").exists()


def test_role_descriptions_are_shown_as_written() -> None:
    # postfix_relayhost's description holds "[relay.example.net]:587", which rich would read as markup.
    done = subprocess.run(
        ["provision", "roles", "postfix"], capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "400"}
    )
    assert done.returncode == 0 and '"[relay.example.net]:587"' in done.stdout


def test_check_and_apply_say_what_would_and_what_did_happen(project: Path, tmp_path: Path) -> None:
    """check: "would" throughout, the handlers that would run, and a change apply's validators
    would refuse is "would fail validation" (exit 1); apply prints "changed" only once committed."""
    provision("apply", "-i", str(project))
    (project / "group_vars").mkdir()
    (project / "group_vars" / "all.yml").write_text("svc_port: 2600\n")
    drift = provision("check", "-i", str(project))
    assert drift.returncode == 2
    assert "alpha: would change /etc/svc/svc.conf (content)" in drift.stdout
    assert "alpha: would run handlers: reload svc" in drift.stdout
    (project / "group_vars" / "all.yml").write_text("svc_port: 2600\nsvc_validate_ok: false\n")
    for command in (["check"], ["apply", "--check"]):
        refused = provision(*command, "-i", str(project), "--json")
        assert refused.returncode == 1, refused.stdout
        errors = json.loads(refused.stdout)["hosts"]["alpha"]["errors"]
        # The validator's own words, naming the file as it will be, not its staged copy.
        assert errors == ["would fail validation (svc config check): refused /etc/svc/svc.conf"]
    (project / "group_vars" / "all.yml").write_text("svc_port: 2600\nsvc_handler_ok: false\n")
    failed = provision("apply", "-i", str(project))
    assert failed.returncode == 1
    assert "changed /etc/svc" not in failed.stdout and "handler 'reload svc' failed" in failed.stdout
    assert "port=2525" in (tmp_path / "a" / "etc/svc/svc.conf").read_text()
