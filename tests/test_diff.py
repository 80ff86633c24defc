"""The diff is a pure function: data in, plan out (data-driven, as pyinfra's tests)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from provision.engine.plan import plan
from provision.state import ActualState, DesiredFile, DesiredService, DesiredState, FileFact, Handler, ServiceFact, sha256

CONTENT = b"port=25\n"


def desired_state(notify: tuple[str, ...] = ("reload",)) -> DesiredState:
    state = DesiredState(host="h")
    state.files["/etc/a.conf"] = DesiredFile("/etc/a.conf", CONTENT, 0o644, "root", "root", "r", "a.j2", notify=notify)
    state.handlers["reload"] = Handler("reload", "true", "r")
    state.packages = ["postfix"]
    state.services = [DesiredService("postfix", "started", True, "r")]
    return state


IN_SYNC = FileFact("/etc/a.conf", exists=True, sha256=sha256(CONTENT), mode=0o644, owner="root", group="root")
"""/etc/a.conf on the host as the desired state has it; a case's differences are ``replace(IN_SYNC, ...)``."""


CASES = [
    ("in sync", IN_SYNC, [], []),
    ("missing", FileFact("/etc/a.conf", exists=False), ["create"], ["reload"]),
    ("content", replace(IN_SYNC, sha256="0" * 64), ["content"], ["reload"]),
    ("mode only", replace(IN_SYNC, mode=0o600), ["mode"], []),
    ("owner and group", replace(IN_SYNC, owner="nobody", group="nogroup"), ["owner", "group"], []),
    ("content and mode", replace(IN_SYNC, sha256="0" * 64, mode=0o600), ["content", "mode"], ["reload"]),
]


@pytest.mark.parametrize(("name", "file_fact", "reasons", "handlers"), CASES, ids=[c[0] for c in CASES])
def test_file_plans(name: str, file_fact: FileFact, reasons: list[str], handlers: list[str]) -> None:
    actual = ActualState(
        "h", files={"/etc/a.conf": file_fact}, packages={"postfix": "3.7"}, services={"postfix": ServiceFact("postfix", True, True)}
    )
    result = plan(desired_state(), actual)
    assert [list(c.reasons) for c in result.files] == ([reasons] if reasons else [])
    assert [h.name for h in result.handlers] == handlers
    assert result.changed == bool(reasons)


def test_missing_package_and_stopped_service() -> None:
    actual = ActualState(
        "h", files={"/etc/a.conf": IN_SYNC}, packages={"postfix": None}, services={"postfix": ServiceFact("postfix", False, False)}
    )
    result = plan(desired_state(), actual)
    assert result.packages == ["postfix"]
    assert result.services[0].start and result.services[0].enable is True
    assert result.files == [] and result.handlers == []


def test_directory_in_place_of_file_is_a_problem() -> None:
    actual = ActualState(
        "h",
        files={"/etc/a.conf": replace(IN_SYNC, is_file=False)},
        packages={"postfix": "1"},
        services={"postfix": ServiceFact("postfix", True, True)},
    )
    result = plan(desired_state(), actual)
    assert result.problems == ["/etc/a.conf is not a regular file"]


def test_handler_fires_once_for_several_files() -> None:
    state = desired_state()
    state.files["/etc/b.conf"] = DesiredFile("/etc/b.conf", b"x", 0o644, "root", "root", "r", "b", notify=("reload",))
    actual = ActualState("h", packages={"postfix": "1"}, services={"postfix": ServiceFact("postfix", True, True)})
    result = plan(state, actual)
    assert len(result.files) == 2 and [h.name for h in result.handlers] == ["reload"]


def test_a_restart_supersedes_the_reload_of_the_same_service() -> None:
    """First converge: the main.cf change notifies a reload, the master.cf one a restart: only the restart runs."""
    state = desired_state()
    state.files["/etc/b.conf"] = DesiredFile("/etc/b.conf", CONTENT, 0o644, "root", "root", "r", "b.j2", notify=("restart",))
    state.handlers["restart"] = Handler("restart", "true", "r", supersedes=("reload",))
    actual = ActualState("h", packages={"postfix": None})
    assert [h.name for h in plan(state, actual).handlers] == ["restart"]
    only_reload = ActualState("h", files={"/etc/b.conf": replace(IN_SYNC, path="/etc/b.conf")}, packages={"postfix": "3.7"})
    assert [h.name for h in plan(state, only_reload).handlers] == ["reload"]


def test_a_service_not_installed_yet_is_enabled_once_it_is() -> None:
    actual = ActualState("h", files={"/etc/a.conf": IN_SYNC}, packages={"postfix": None}, services={})
    [change] = plan(desired_state(), actual).services
    assert change.start and change.enable is True
    enabled = ActualState("h", files={"/etc/a.conf": IN_SYNC}, services={"postfix": ServiceFact("postfix", True, True)})
    assert plan(desired_state(), enabled).services == []


def test_check_says_would_and_apply_says_done() -> None:
    from provision.engine.converge import HostResult, report_plan

    actual = ActualState("h", files={"/etc/a.conf": replace(IN_SYNC, sha256="0" * 64)}, packages={"postfix": "3.7"}, services={})
    checked, applied = HostResult("h"), HostResult("h")
    report_plan(checked, plan(desired_state(), actual), False, [], check=True)
    report_plan(applied, plan(desired_state(), actual), False, [], check=False)
    assert checked.services == ["postfix: would start, would enable"] and checked.handlers == ["reload"]
    assert applied.services == ["postfix: started, enabled"]
