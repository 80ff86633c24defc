"""Never silent (issue 14, point 6): a play whose hosts match nothing, a
--limit that leaves a play no host, and --tags naming a tag no role has are
said on stderr; --tags that select nothing at all stop the run (exit 1)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import svc_project

PLAYS = """
- hosts: all
  roles: [svc]
- name: mail relays
  hosts: mial
  roles: [motd]
- hosts: beta
  roles: [{role: motd, tags: [banner]}]
"""


@pytest.fixture
def project(tmp_path: Path, make_tree: Callable[[dict[str, str]], Path]) -> Path:
    files = svc_project(str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "log"))
    return make_tree({**files, "site.yml": PLAYS})


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False)


def warnings(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("warning: ")]


def test_a_play_that_matches_no_host_is_said(project: Path) -> None:
    done = provision("check", "-i", str(project))
    assert done.returncode == 2  # nothing applied yet: drift, and the run went on
    (warning,) = warnings(done)
    assert "site.yml:3:" in warning and "play 'mail relays'" in warning and "hosts pattern 'mial' matches no host" in warning


def test_a_limit_that_leaves_a_play_empty_is_said(project: Path) -> None:
    done = provision("check", "-i", str(project), "--limit", "alpha")
    said = "\n".join(warnings(done))
    assert "(hosts: beta): --limit 'alpha' leaves it no host (it matches beta)" in said
    assert "beta:" not in done.stdout  # and beta was indeed left alone


def test_a_tag_no_role_has_is_said_and_the_others_still_run(project: Path) -> None:
    done = provision("apply", "-i", str(project), "--tags", "svc,bannr")
    assert done.returncode == 0, done.stderr
    said = "\n".join(warnings(done))
    assert "no role has the tag 'bannr'; did you mean 'banner'?" in said
    assert "alpha: changed /etc/svc/svc.conf" in done.stdout


def test_tags_that_select_nothing_stop_the_run_before_any_host(project: Path, tmp_path: Path) -> None:
    done = provision("apply", "-i", str(project), "--tags", "sv")
    assert done.returncode == 1
    assert done.stderr.startswith("error: --tags sv select nothing on the selected hosts, nothing would be done:")
    assert "no role has the tag 'sv'; did you mean 'svc'?" in done.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no host was touched


def test_a_tag_only_on_hosts_outside_the_limit_selects_nothing(project: Path) -> None:
    done = provision("check", "-i", str(project), "--limit", "alpha", "--tags", "banner")
    assert done.returncode == 1
    assert "the tag 'banner' is on no role of the 1 selected host(s)" in done.stderr


def test_render_says_the_same(project: Path, tmp_path: Path) -> None:
    done = provision("render", "-i", str(project), "--out", str(tmp_path / "out"))
    assert done.returncode == 0 and any("matches no host" in w for w in warnings(done))
    assert provision("render", "-i", str(project), "--out", str(tmp_path / "out"), "--tags", "nope").returncode == 1


def test_a_site_where_everything_matches_says_nothing(project: Path) -> None:
    (project / "site.yml").write_text("- hosts: all\n  roles: [svc]\n")
    done = provision("check", "-i", str(project), "--tags", "svc")
    assert warnings(done) == [] and "error" not in done.stderr
