"""bounce_queue_lifetime never longer than maximal_queue_lifetime (issue 14,
point 4): Postfix would warn and cut it down on the host; here the bounce
lifetime follows by default and a longer one is refused on the controller."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from provision.errors import VariableError
from provision.roles.variables import parse_duration
from tests.conftest import ROOT

Compile = Callable[[str, str, dict[str, Any]], dict[str, str]]


def lifetimes(main_cf: str) -> tuple[int, int]:
    values = dict(re.findall(r"^(maximal_queue_lifetime|bounce_queue_lifetime) = (\S+)$", main_cf, re.M))
    return parse_duration(values["maximal_queue_lifetime"]), parse_duration(values["bounce_queue_lifetime"])


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, (5 * 86400, 5 * 86400)),
        ({"postfix_maximal_queue_lifetime": "3d"}, (3 * 86400, 3 * 86400)),  # the bounce lifetime follows
        ({"postfix_maximal_queue_lifetime": 300, "postfix_bounce_queue_lifetime": "4m"}, (300, 240)),
        ({"postfix_maximal_queue_lifetime": "1w", "postfix_bounce_queue_lifetime": "7d"}, (604800, 604800)),
        ({"postfix_maximal_queue_lifetime": 0}, (0, 0)),
    ],
)
def test_bounce_lifetime_is_at_most_the_queue_lifetime(compile_role: Compile, settings: dict[str, Any], expected: tuple[int, int]) -> None:
    assert lifetimes(compile_role("postfix", "mx1.example.net", settings)["/etc/postfix/main.cf"]) == expected


def test_a_longer_bounce_lifetime_is_refused_with_its_line(compile_role: Compile) -> None:
    with pytest.raises(VariableError) as caught:
        compile_role("postfix", "mx1.example.net", {"postfix_maximal_queue_lifetime": "3d", "postfix_bounce_queue_lifetime": "5d"})
    text = str(caught.value)
    assert "host_vars/mx1.example.net.yml:" in text and "variable postfix_bounce_queue_lifetime: 5d is longer than" in text


def test_the_readme_example_is_what_postfix_accepts(compile_role: Compile) -> None:
    readme = (ROOT / "roles" / "postfix" / "README.md").read_text()
    example = yaml.safe_load(readme.split("## Example", 1)[1].split("```yaml", 1)[1].split("```", 1)[0])
    maximal, bounce = lifetimes(compile_role("postfix", "mx1.example.net", example)["/etc/postfix/main.cf"])
    assert bounce <= maximal
