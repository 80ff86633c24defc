"""IP warm-up: a schedule turned into randmap weights and rate limits for one date."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from provision.errors import ProvisionError
from provision.roles.warmup import BEFORE, WARMED, WARMING, step, transports_on

THREE: dict[str, Any] = {
    "postfix_transport_selection": "random",
    "postfix_transports": [
        {"name": "out1", "bind_address": "127.83.1.1"},
        {"name": "out2", "bind_address": "127.83.1.2"},
        {"name": "out3", "bind_address": "127.83.1.3", "warmup": {"start": "2026-12-01", "volumes": [100, 400, 1000, 2000]}},
    ],
}


def randmap(main_cf: str) -> list[str]:
    found = re.search(r"^sender_dependent_default_transport_maps = .*randmap:\{([^}]*)\}$", main_cf, re.M)
    assert found, main_cf
    return found.group(1).split(",")


@pytest.fixture
def main_cf(compile_role: Callable[[str, str, dict[str, Any]], dict[str, str]]) -> Callable[[dict[str, Any]], str]:
    return lambda host_vars: compile_role("postfix", "mx1.example.net", host_vars)["/etc/postfix/main.cf"]


def test_steps_before_during_and_after_the_schedule() -> None:
    transport = {"name": "out3", "weight": 4, "warmup": {"start": "2026-12-01", "volumes": [100, 400, 1000, 2000]}}
    before, first, third, after = (step(transport, day) for day in ("2026-11-30", "2026-12-01", "2026-12-03", "2026-12-05"))
    assert (before.stage, before.share, before.rate_delay) == (BEFORE, 0.0, None)
    assert (first.stage, first.day, first.volume, first.rate_delay, first.share) == (WARMING, 1, 100, 864, 0.05)
    assert (third.day, third.volume, third.rate_delay, third.share) == (3, 1000, 87, 0.5)
    assert (after.stage, after.share, after.rate_delay) == (WARMED, 1.0, None)
    assert "day 3 of 4" in third.describe() and "1000 messages a day" in third.describe()


def test_weights_by_day_are_on_the_scale_of_the_transports_weight() -> None:
    transport = {"name": "out3", "weight": 10, "warmup": {"start": "2026-12-01", "weights": [1, 2, 5]}}
    assert [step(transport, f"2026-12-0{d}").share for d in (1, 2, 3)] == [0.1, 0.2, 0.5]
    assert step(transport, "2026-12-04").stage == WARMED
    assert step(transport, "2026-12-02").rate_delay is None  # weights alone set no rate limit


def test_the_default_curve_takes_four_weeks() -> None:
    transport = {"name": "out3", "warmup": {"start": "2026-12-01"}}
    assert step(transport, "2026-12-01").volume == 50 and step(transport, "2026-12-28").volume == 50000
    assert step(transport, "2026-12-29").stage == WARMED


def test_weights_without_warmup_stay_as_declared() -> None:
    transports = [{"name": "a", "weight": 2}, {"name": "b", "weight": 3}]
    assert [t["weight"] for t in transports_on(transports, "2026-12-01")] == [2, 3]


def test_rendered_weights_for_three_dates(main_cf: Callable[[dict[str, Any]], str]) -> None:
    before = main_cf({**THREE, "postfix_warmup_date": "2026-11-30"})
    assert sorted(set(randmap(before))) == ["out1", "out2"] and "out3_destination_rate_delay" not in before
    day2 = main_cf({**THREE, "postfix_warmup_date": "2026-12-02"})
    names = randmap(day2)
    # Day 2: 400 of 2000 a day, a fifth of a full transport; at most 400 a day to one domain.
    assert (names.count("out1"), names.count("out2"), names.count("out3")) == (5, 5, 1)
    assert "\nout3_destination_rate_delay = 216s\n" in day2
    assert "#   out3: day 2 of 4: 20% of its full weight, 400 messages a day per receiving domain" in day2
    done = main_cf({**THREE, "postfix_warmup_date": "2026-12-05"})
    assert randmap(done) == ["out1", "out2", "out3"] and "rate_delay" not in done


def test_instances_get_their_own_warmup(compile_role: Callable[[str, str, dict[str, Any]], dict[str, str]]) -> None:
    instance = {"name": "postfix-bulk", "inet_interfaces": ["127.83.1.9"], "transport_selection": "random"}
    instance["transports"] = THREE["postfix_transports"]
    files = compile_role("postfix", "mx1.example.net", {"postfix_instances": [instance], "postfix_warmup_date": "2026-12-02"})
    text = files["/etc/postfix-bulk/main.cf"]
    assert randmap(text).count("out3") == 1 and "\nout3_destination_rate_delay = 216s\n" in text


def test_every_transport_before_its_start_is_refused(main_cf: Callable[[dict[str, Any]], str]) -> None:
    transports = [dict(t, warmup={"start": "2026-12-10"}) for t in THREE["postfix_transports"]]
    with pytest.raises(ProvisionError, match="before its warm-up start"):
        main_cf({**THREE, "postfix_transports": transports, "postfix_warmup_date": "2026-12-01"})


@pytest.mark.parametrize("bad", ["2026-13-01", "1.12.2026", "tomorrow", "2026-12-01\nx"])
def test_a_bad_start_date_names_the_variable(main_cf: Callable[[dict[str, Any]], str], bad: str) -> None:
    transports = [*THREE["postfix_transports"][:2], {"name": "out3", "bind_address": "127.83.1.3", "warmup": {"start": bad}}]
    with pytest.raises(ProvisionError, match=r"postfix_transports\[2\]\.warmup\.start.*YYYY-MM-DD"):
        main_cf({**THREE, "postfix_transports": transports})


def test_a_step_change_says_warm_up_step_due(compile_role: Callable[[str, str, dict[str, Any]], dict[str, str]], tmp_path: Any) -> None:
    from provision.engine.plan import plan
    from provision.state import ActualState, DesiredFile, DesiredState, FileFact, sha256

    day2 = compile_role("postfix", "mx1.example.net", {**THREE, "postfix_warmup_date": "2026-12-02"})
    day3 = compile_role("postfix", "mx1.example.net", {**THREE, "postfix_warmup_date": "2026-12-03"})
    assert (
        day2["/etc/postfix/provision-warmup"].splitlines()[1]
        == "out3: day 2 of 4: 20% of its full weight, 400 messages a day per receiving domain"
    )
    assert day2["/etc/postfix/provision-warmup"] != day3["/etc/postfix/provision-warmup"]
    path = "/etc/postfix/provision-warmup"
    wanted = DesiredFile(path, day3[path].encode(), 0o644, "root", "root", "postfix", "content", change_note="warm-up step due")
    on_host = FileFact(path, True, True, sha256(day2[path].encode()), 0o644, "root", "root")
    (change,) = plan(DesiredState("h", files={path: wanted}), ActualState("h", files={path: on_host})).files
    assert change.reasons == ("content", "warm-up step due")
    same = FileFact(path, True, True, wanted.sha256, 0o600, "root", "root")
    (mode_only,) = plan(DesiredState("h", files={path: wanted}), ActualState("h", files={path: same})).files
    assert mode_only.reasons == ("mode",)  # no step is due when only the mode differs
    assert "/etc/postfix/provision-warmup" not in compile_role(
        "postfix", "mx1.example.net", {"postfix_transports": THREE["postfix_transports"][:2]}
    )
