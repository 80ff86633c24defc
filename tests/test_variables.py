"""Variable types: what each accepts and refuses."""

from __future__ import annotations

from typing import Any

import pytest

from provision.roles.variables import VariableSpec, VariableValueError, check_value, parse_duration

GOOD = [
    ("str", "hello"),
    ("int", 3),
    ("bool", False),
    ("path", "/etc/postfix"),
    ("ip", "::1"),
    ("ipv4", "127.0.0.2"),
    ("ipv6", "2001:db8::1"),
    ("cidr", "127.0.0.0/8"),
    ("hostname", "mx01.example.net"),
    ("port", 25),
    ("duration", "5d"),
    ("duration", 300),
    ("size", 10240000),
    ("size", "10m"),
    ("email", "postmaster@example.net"),
    ("mode", "0640"),
    ("list", ["a", "b"]),
    ("dict", {"a": 1}),
]
BAD = [
    ("str", "two\nlines", "newline"),
    ("str", ["a"], "got a list"),
    ("int", "3.5", "an integer"),
    ("int", True, "an integer"),
    ("bool", "maybe", "true or false"),
    ("path", "etc/postfix", "absolute"),
    ("ipv4", "::1", "IPv4"),
    ("ip", "256.1.1.1", "IPv4 or IPv6"),
    ("cidr", "127.0.0.1", "CIDR"),
    ("hostname", "bad host", "host name"),
    ("port", 70000, "port"),
    ("duration", "5x", "Postfix units"),
    ("duration", "5 d", "Postfix units"),
    ("size", "10 MB", "size"),
    ("email", "no-at-sign", "email"),
    ("mode", 644, "quoted"),
    ("list", [{"k": "a\nb"}], "newline"),
    ("dict", {"k": "v\r\nX: y"}, "newline"),
]


@pytest.mark.parametrize(("kind", "value"), GOOD)
def test_accepts(kind: str, value: Any) -> None:
    assert check_value(value, VariableSpec("v", type=kind)) == value


@pytest.mark.parametrize(("kind", "value", "message"), BAD)
def test_refuses(kind: str, value: Any, message: str) -> None:
    with pytest.raises(VariableValueError) as caught:
        check_value(value, VariableSpec("v", type=kind))
    assert message in caught.value.message


def test_choices_and_bounds() -> None:
    spec = VariableSpec("mpm", choices=["prefork", "worker", "event"])
    assert check_value("event", spec) == "event"
    with pytest.raises(VariableValueError, match="one of"):
        check_value("threaded", spec)
    with pytest.raises(VariableValueError, match="at most 10"):
        check_value(11, VariableSpec("n", type="int", maximum=10))


def test_nested_options_fill_defaults_and_name_the_field() -> None:
    spec = VariableSpec(
        "t",
        type="list",
        elements=VariableSpec(
            "t[]",
            type="dict",
            options={
                "name": VariableSpec("name", required=True),
                "bind_address": VariableSpec("bind_address", type="ip"),
                "helo_name": VariableSpec("helo_name", type="hostname", default="mx.example.net", has_default=True),
            },
        ),
    )
    assert check_value([{"name": "out1", "bind_address": "127.0.0.2"}], spec) == [
        {"name": "out1", "bind_address": "127.0.0.2", "helo_name": "mx.example.net"}
    ]
    with pytest.raises(VariableValueError) as caught:
        check_value([{"name": "out1"}, {"name": "out2", "bind_address": "nope"}], spec)
    assert caught.value.path == "[1].bind_address"
    with pytest.raises(VariableValueError, match="unknown field 'bind'"):
        check_value([{"name": "x", "bind": "127.0.0.1"}], spec)


@pytest.mark.parametrize(("text", "seconds"), [("300s", 300), ("5m", 300), ("1h", 3600), ("5d", 432000), ("1w", 604800), ("90", 90)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
