"""Typed role variables, declared like Ansible's ``meta/argument_specs.yml``.

A role declares each variable with ``type``, ``default``, ``description`` and
optionally ``choices``, ``elements`` (list items), ``options`` (dict fields),
``min``/``max``, ``pattern``, ``secret`` and ``multiline``. Values are checked
before any template renders, so a bad value never reaches a host.

Every string-like value refuses newlines unless ``multiline: true``: a config
line built from a variable can never smuggle in an extra directive.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TYPES = (
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "raw",
    "path",
    "ip",
    "ipv4",
    "ipv6",
    "cidr",
    "hostname",
    "port",
    "duration",
    "size",
    "email",
    "mode",
    "date",
)

_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")
_DURATION = re.compile(r"^\d+[smhdw]?$")
_SIZE = re.compile(r"^\d+[kKmMgG]?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class VariableValueError(ValueError):
    """A value that does not fit its spec; ``path`` names the offending part."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass
class VariableSpec:
    name: str
    type: str = "str"
    description: str = ""
    default: Any = None
    required: bool = False
    has_default: bool = False
    choices: list[Any] | None = None
    elements: VariableSpec | None = None
    options: dict[str, VariableSpec] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    secret: bool = False
    multiline: bool = False
    unique_by: str | None = None
    """For a list of mappings: the field whose values must all differ."""
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human phrase for what the spec expects."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type == "list" and self.elements is not None:
            return f"a list of {self.elements.describe()}"
        return _EXPECTED.get(self.type, self.type)


_EXPECTED = {
    "str": "a single-line string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
    "raw": "any value",
    "path": "an absolute path",
    "ip": "an IPv4 or IPv6 address",
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "cidr": "a network in CIDR notation (such as 192.0.2.0/24)",
    "hostname": "a host name",
    "port": "a port number (1-65535)",
    "duration": "a time with Postfix units (such as 300s, 5m, 1h, 5d, 1w)",
    "size": "a size in bytes (optionally with k, m or g)",
    "email": "an email address",
    "mode": "an octal file mode (such as '0644')",
    "date": "a date written YYYY-MM-DD",
}


def parse_duration(value: str | int) -> int:
    """Seconds in a Postfix time value; a bare number means seconds."""
    text = str(value)
    unit = text[-1] if text[-1] in _DURATION_SECONDS else "s"
    number = text[:-1] if text[-1] in _DURATION_SECONDS else text
    return int(number) * _DURATION_SECONDS[unit]


def _single_line(value: str, spec: VariableSpec) -> None:
    if not spec.multiline and ("\n" in value or "\r" in value or "\x00" in value):
        raise VariableValueError("must not contain a newline (it would add a line to the config file)")


def _check_string(value: Any, spec: VariableSpec) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}")
    text = str(value)
    _single_line(text, spec)
    return text


def _checked(test: Callable[[str], bool]) -> Callable[[Any, VariableSpec], Any]:
    def check(value: Any, spec: VariableSpec) -> Any:
        text = _check_string(value, spec)
        if not test(text):
            raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
        return value

    return check


def _is_ip(text: str, version: int | None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _check_int(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)} {value!r}")
    return value


def _check_float(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)} {value!r}")
    return value


def _check_bool(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, bool):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)} {value!r}")
    return value


def _check_port(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    return value


def _check_duration(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DURATION.match(value))):
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    return value


def _check_size(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _SIZE.match(value))):
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    return value


def _check_mode(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, str) or not _MODE.match(value):
        raise VariableValueError(f"expected {spec.describe()} written as a quoted string, got {value!r}")
    return value


def _check_list(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, list):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}")
    if spec.elements is None:
        for index, item in enumerate(value):
            _reject_newlines_deep(item, f"[{index}]")
        return value
    checked = [_nested(check_value, item, spec.elements, f"[{index}]") for index, item in enumerate(value)]
    if spec.unique_by is not None:
        seen: dict[Any, int] = {}
        for index, item in enumerate(checked):
            key = item.get(spec.unique_by) if isinstance(item, dict) else None
            if key in seen:
                raise VariableValueError(f"{spec.unique_by} {key!r} is used twice (items {seen[key]} and {index})", f"[{index}]")
            seen[key] = index
    return checked


def _check_dict(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, dict):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}")
    if spec.options is None:
        for key, item in value.items():
            _single_line(str(key), spec)
            _reject_newlines_deep(item, f".{key}")
        return value
    result: dict[str, Any] = {}
    for key in value:
        if key not in spec.options:
            known = ", ".join(sorted(spec.options))
            raise VariableValueError(f"unknown field {key!r} (expected: {known})", f".{key}")
    for key, option in spec.options.items():
        if key in value:
            result[key] = _nested(check_value, value[key], option, f".{key}")
        elif option.required:
            raise VariableValueError(f"missing required field {key!r}", f".{key}")
        else:
            result[key] = option.default
    return result


def _nested(check: Callable[[Any, VariableSpec], Any], value: Any, spec: VariableSpec, path: str) -> Any:
    try:
        return check(value, spec)
    except VariableValueError as exc:
        raise VariableValueError(exc.message, path + exc.path) from None


def _reject_newlines_deep(value: Any, path: str) -> None:
    if isinstance(value, str):
        if "\n" in value or "\r" in value or "\x00" in value:
            raise VariableValueError("must not contain a newline (it would add a line to the config file)", path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_newlines_deep(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_newlines_deep(str(key), path)
            _reject_newlines_deep(item, f"{path}.{key}")


def _check_raw(value: Any, spec: VariableSpec) -> Any:
    if not spec.multiline:
        _reject_newlines_deep(value, "")
    return value


def _check_path(value: Any, spec: VariableSpec) -> Any:
    text = _check_string(value, spec)
    if not text.startswith("/"):
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    return value


def _check_date(value: Any, spec: VariableSpec) -> Any:
    """YAML reads an unquoted 2026-12-01 as a date: both forms give the ISO text."""
    if isinstance(value, dt.datetime) or not isinstance(value, (dt.date, str)):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)} {value!r}")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else _bad_date(value, spec)
    except ValueError:
        return _bad_date(value, spec)


def _bad_date(value: Any, spec: VariableSpec) -> Any:
    raise VariableValueError(f"expected {spec.describe()}, got {value!r}")


_CHECKS: dict[str, Callable[[Any, VariableSpec], Any]] = {
    "str": lambda value, spec: (_check_string(value, spec), value)[1],
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "list": _check_list,
    "dict": _check_dict,
    "raw": _check_raw,
    "path": _check_path,
    "ip": _checked(lambda t: _is_ip(t, None)),
    "ipv4": _checked(lambda t: _is_ip(t, 4)),
    "ipv6": _checked(lambda t: _is_ip(t, 6)),
    "cidr": _checked(_is_cidr),
    "hostname": _checked(lambda t: bool(_HOSTNAME.match(t))),
    "port": _check_port,
    "duration": _check_duration,
    "size": _check_size,
    "email": _checked(lambda t: bool(_EMAIL.match(t))),
    "mode": _check_mode,
    "date": _check_date,
}


def check_value(value: Any, spec: VariableSpec) -> Any:
    """Return the value (dict fields completed with defaults) or raise."""
    if value is None and not spec.required:
        return None
    checked = _CHECKS[spec.type](value, spec)
    if spec.choices is not None and checked not in spec.choices:
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    if spec.minimum is not None and isinstance(checked, (int, float)) and checked < spec.minimum:
        raise VariableValueError(f"must be at least {spec.minimum:g}, got {value!r}")
    if spec.maximum is not None and isinstance(checked, (int, float)) and checked > spec.maximum:
        raise VariableValueError(f"must be at most {spec.maximum:g}, got {value!r}")
    if spec.pattern is not None and isinstance(checked, str) and not re.fullmatch(spec.pattern, checked):
        raise VariableValueError(f"must match the pattern {spec.pattern!r}, got {value!r}")
    return checked


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )
