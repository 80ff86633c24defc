"""Which Debian release each lab host runs: --suite as the CLI takes it, and
one image per suite (no Docker needed; tests/lab/test_lab_suites.py boots them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provision.cli import main
from provision.lab.docker import LabError
from provision.lab.image import SUITES, image_name, recipe_tag, sources
from provision.lab.lab import assign_suites, parse_suite_options

HOSTS = ["web-1", "web-2", "web-3"]


def test_no_suite_is_bookworm_for_every_host() -> None:
    assert assign_suites(HOSTS, None) == dict.fromkeys(HOSTS, "bookworm")


def test_one_suite_is_for_every_host() -> None:
    assert parse_suite_options(["trixie"], HOSTS) == dict.fromkeys(HOSTS, "trixie")


def test_a_list_gives_one_suite_per_host_in_order() -> None:
    assert parse_suite_options(["bullseye,bookworm,trixie"], HOSTS) == {"web-1": "bullseye", "web-2": "bookworm", "web-3": "trixie"}


def test_host_equals_suite_wins_over_the_rest() -> None:
    assert parse_suite_options(["bullseye", "web-2=trixie"], HOSTS) == {"web-1": "bullseye", "web-2": "trixie", "web-3": "bullseye"}
    assert parse_suite_options(["web-3=bullseye"], HOSTS) == {"web-1": "bookworm", "web-2": "bookworm", "web-3": "bullseye"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["buster"], "unknown suite 'buster': the lab builds bullseye, bookworm, trixie"),
        (["bullseye,trixie"], "2 suites (bullseye, trixie) for 3 hosts"),
        (["web-9=trixie"], "--suite names host(s) not in the lab: web-9"),
        (["web-1=sid"], "unknown suite 'sid'"),
    ],
)
def test_mistakes_are_refused(values: list[str], message: str) -> None:
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_suite_options(values, HOSTS)


def test_lab_up_with_a_bad_suite_says_so_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_LAB_DIR", str(tmp_path / "labs"))
    result = CliRunner().invoke(main, ["lab", "up", "--name", "typo", "--hosts", "2", "--suite", "bookwork"])
    assert result.exit_code == 1
    assert "unknown suite 'bookwork'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "labs").exists()


def test_provision_test_with_a_bad_suite_says_so() -> None:
    result = CliRunner().invoke(main, ["test", "sshd", "--suite", "jessie"])
    assert result.exit_code == 1 and "unknown suite 'jessie'" in result.stderr


def test_one_image_per_suite_and_bookworm_keeps_its_tag() -> None:
    names = {suite: image_name(suite) for suite in SUITES}
    assert len(set(names.values())) == 3
    assert all(names[suite].startswith(f"provision-lab/debian:{suite}-") for suite in SUITES)
    # The tag of the image machines already built before suites existed: changing it would rebuild it everywhere.
    assert recipe_tag("bookworm") == "bookworm-b1034435c3ea"


def test_each_suite_gets_its_own_updates_and_security_sources() -> None:
    for suite in SUITES:
        text = sources(suite)
        assert f" {suite} main" in text and f" {suite}-updates main" in text and f" {suite}-security main" in text
        assert not any(other in text for other in SUITES if other != suite)
