"""Typed role variables, declared like Ansible's ``meta/argument_specs.yml``.

A role declares each variable with ``type``, ``default``, ``description`` and
optionally ``choices``, ``elements`` (list items), ``options`` (dict fields),
``keys``/``values`` (a free mapping's keys and values), ``min``/``max``,
``pattern``, ``secret`` and ``multiline``. Values are checked before any
template renders, so a bad value never reaches a host.

Every string-like value refuses newlines and other control characters unless
``multiline: true``: a config line built from a variable can never smuggle in
an extra directive, and a login banner never sends a terminal escape.

Types named after a config format (``apache_handler``, ``postfix_value``,
``alias_target``...) accept exactly what that format can hold with its meaning
intact: what the format would split, trim or reinterpret is refused here, with
the variable's name, rather than written and misread by the service.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    "file_extension",
    "apache_handler",
    "apache_require",
    "postfix_parameter",
    "postfix_value",
    "lookup_key",
    "alias_name",
    "alias_target",
    "listen",
    "address_port",
    "inet_interface",
    "date",
    "domain",
    "interface",
)

# No trailing dot: every place a host name goes compares it with names written
# without one (Postfix's mydestination against the dot-less domains it
# resolves, Apache's ServerName against Host headers, a certificate's CN and
# SAN against what clients ask for), and a HELO name with one is refused by
# receivers that check RFC 5321's syntax.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*$")
_DOMAIN = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*"
_DURATION = re.compile(r"^\d+[smhdw]?$")
_SIZE = re.compile(r"^\d+[kKmMgG]?$")
# RFC 5322 dot-atom text without "$" (Apache expands ${...} on every line) and
# a host name: nothing a config file or a mail header would read specially.
_LOCAL_PART = r"[A-Za-z0-9!#%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#%&'*+/=?^_`{|}~-]+)*"
_EMAIL = re.compile(rf"^{_LOCAL_PART}@{_DOMAIN}$")
# A DKIM signing domain (RFC 6376 d=, RFC 5321 letters, digits and hyphens) written
# without the root's trailing dot: opendkim's SigningTable pattern *@DOMAIN. never
# matches a From: address, and SELECTOR._domainkey.DOMAIN. is no zone name.
_DOMAIN_NAME = re.compile(rf"^(?=.{{1,253}}$){_DOMAIN}$")
# A Linux interface name (the kernel's dev_valid_name: at most 15 bytes, no "/",
# ":" or whitespace, not "." or ".."), narrowed to what /etc/network/interfaces
# and `ip ... dev NAME` read as one plain word: no "=", which ifup reads as
# IFACE=LOGICAL, and no leading "-". "eth0:1" is an ifupdown alias label, not an
# interface `ip addr add ... dev` can take.
_INTERFACE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")
# Control characters other than TAB end a config line, or reach a terminal as escapes.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# mod_mime keeps one extension per dot; a space would make it two arguments.
_EXTENSION = re.compile(r"^\.?[A-Za-z0-9_~+-]+$")
# Lower case: AddHandler lowers a handler name, SetHandler does not, and a name
# no module answers to makes Apache serve the file as it is (a script's source).
# No %, $, \ or braces: SetHandler reads its argument as an expression.
_HANDLER = re.compile(r"^[a-z0-9][a-z0-9_.+/:|=-]*$")
_POSTFIX_PARAMETER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# aliases(5) keys are RFC 822 local parts without a domain; ":" ends the key,
# "," "@" "%" are refused by postalias, quotes and parentheses are RFC 822 syntax.
_ALIAS_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
_ALIAS_ADDRESS = re.compile(rf"^[A-Za-z0-9_][A-Za-z0-9._+=-]*(@{_DOMAIN})?$")
# Postfix compares these keys case-insensitively (postmap and postalias fold them),
# as DNS does host names: two keys that differ only in case are one key.
CASELESS_TYPES = frozenset({"hostname", "domain", "email", "lookup_key", "alias_name"})
# Addresses that are one address however they are written (2001:db8::1, 2001:DB8:0::1).
ADDRESS_TYPES = frozenset({"ip", "ipv4", "ipv6"})
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
    keys: VariableSpec | None = None
    """For a mapping without ``options``: what every key must be."""
    values: VariableSpec | None = None
    """For a mapping without ``options``: what every value must be."""
    unique_by: str | None = None
    """For a list of mappings: the field whose values must all differ (case-insensitively for host names)."""
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
    "hostname": "a host name without a trailing dot (such as mx1.example.net)",
    "port": "a port number (1-65535)",
    "duration": "a time with Postfix units (such as 300s, 5m, 1h, 5d, 1w)",
    "size": "a size in bytes (optionally with k, m or g)",
    "email": "an email address",
    "mode": "an octal file mode (such as '0644')",
    "file_extension": "one file name extension (such as .cgi)",
    "apache_handler": "an Apache handler name in lower case (such as cgi-script)",
    "apache_require": "the arguments of one Require line (such as 'all granted')",
    "postfix_parameter": "a Postfix parameter name (such as smtp_helo_name)",
    "postfix_value": "a Postfix parameter value (a string, number, yes/no, or a list)",
    "lookup_key": "a lookup table key (an address, @domain, domain or IP address)",
    "alias_name": "a local alias name (such as postmaster)",
    "alias_target": "an address, /file, |command or :include:/file, or a list of them",
    "listen": "a port, or an address and a port (such as 8080, 192.0.2.1:80 or [2001:db8::1]:443)",
    "address_port": "an address and a port (such as *:80, 192.0.2.1:80 or [2001:db8::1]:443)",
    "inet_interface": "all, loopback-only, or an IPv4 or IPv6 address",
    "date": "a date written YYYY-MM-DD",
    "domain": "a domain name without a trailing dot (such as example.net)",
    "interface": "a network interface name (such as eth0 or ens3)",
}


def parse_duration(value: str | int) -> int:
    """Seconds in a Postfix time value; a bare number means seconds."""
    text = str(value)
    unit = text[-1] if text[-1] in _DURATION_SECONDS else "s"
    number = text[:-1] if text[-1] in _DURATION_SECONDS else text
    return int(number) * _DURATION_SECONDS[unit]


def _single_line(value: str, spec: VariableSpec) -> None:
    if spec.multiline:
        found = _CONTROL_MULTILINE.search(value)
    else:
        if "\n" in value or "\r" in value:
            raise VariableValueError("must not contain a newline (it would add a line to the config file)")
        found = _CONTROL.search(value)
    if found:
        raise VariableValueError(
            f"must not contain the control character {found.group()!r} (it would end a config line or reach a terminal)"
        )


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
            raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
        return value

    return check


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as every config reads one. Python also takes an IPv6 zone
    index (fe80::1%eth0), and any text after the "%": "fe80::1%a b" would be two
    words in a config, "fe80::1%x#y" a comment. No config here needs a zone."""
    if "%" in text:
        raise ValueError(f"{text!r}: an IPv6 zone index (%...) is not accepted")
    return ipaddress.ip_address(text)


def _is_ip(text: str, version: int | None) -> bool:
    try:
        address = ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _is_cidr(text: str) -> bool:
    if "%" in text:
        return False  # an IPv6 zone index, see ip_address
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


# Ansible's argument_spec converts what it can (module_utils/common/validation.py:
# check_type_int, check_type_float, check_type_bool, check_type_list), so that
# values copied from Ansible variables, often strings, work unchanged here.
_INTEGER_TEXT = re.compile(r"^\s*[-+]?\d+\s*$")
_BOOLEANS_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_BOOLEANS_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})


def _as_int(value: Any) -> int | None:
    """An integer, or text that is one ("500"); None for anything else (a bool is not a number here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    return None


def _check_int(value: Any, spec: VariableSpec) -> Any:
    number = _as_int(value)
    if number is None:
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}{_got(value, spec, ' ')}")
    return number


def _check_float(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}{_got(value, spec, ' ')}")
    return value


def _check_bool(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int, float)) else None
    if text in _BOOLEANS_TRUE:
        return True
    if text in _BOOLEANS_FALSE:
        return False
    raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}{_got(value, spec, ' ')}")


def _check_port(value: Any, spec: VariableSpec) -> Any:
    number = _as_int(value)
    if number is None or not 1 <= number <= 65535:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
    return number


def _port_text(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and 1 <= int(text) <= 65535 else None


def _split_address_port(text: str) -> tuple[str | None, str]:
    """("192.0.2.1", "80") from "192.0.2.1:80", ("2001:db8::1", "443") from "[2001:db8::1]:443", (None, "80") from "80"."""
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise VariableValueError(f"{text!r}: an IPv6 address in brackets must be followed by :PORT")
        return address, rest[1:]
    if ":" not in text:
        return None, text
    address, _, port = text.rpartition(":")
    if ":" in address:
        raise VariableValueError(f"{text!r}: write an IPv6 address in brackets, as [2001:db8::1]:443")
    return address, port


def _address_port(value: Any, spec: VariableSpec, *, address_required: bool, wildcard: bool) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not address_required:
        value = str(value)
    text = _check_string(value, spec)
    address, port = _split_address_port(text)  # no surrounding blanks: the value lands in a config as it is
    if _port_text(port) is None:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)} (the port must be 1 to 65535)")
    if address is None:
        if address_required:
            raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)} (no address)")
        return text
    if wildcard and address == "*":
        return text
    try:
        parsed = ip_address(address)
    except ValueError:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)} ({address!r} is not an IP address)") from None
    if parsed.version == 6 and not text.startswith("["):
        raise VariableValueError(f"{text!r}: write an IPv6 address in brackets, as [2001:db8::1]:443")
    return text


def _check_listen(value: Any, spec: VariableSpec) -> Any:
    return _address_port(value, spec, address_required=False, wildcard=False)


def _check_address_port(value: Any, spec: VariableSpec) -> Any:
    return _address_port(value, spec, address_required=True, wildcard=True)


def _check_inet_interface(value: Any, spec: VariableSpec) -> Any:
    text = _check_string(value, spec)
    if text in ("all", "loopback-only"):
        return text
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        parsed = ip_address(bare)
    except ValueError:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}") from None
    if bare != text and parsed.version != 6:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)} (brackets are for IPv6 addresses)")
    return text


def _check_ip(value: Any, spec: VariableSpec, version: int | None, test: Callable[[str], bool] | None = None) -> Any:
    text = _check_string(value, spec)
    if "%" in text:
        raise VariableValueError(f"expected {spec.describe()}, got {value!r} (an IPv6 zone index, %..., is not accepted)")
    if not (test(text) if test else _is_ip(text, version)):
        raise VariableValueError(f"expected {spec.describe()}, got {value!r}")
    return value


def _check_duration(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DURATION.match(value))):
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
    return value


def _check_size(value: Any, spec: VariableSpec) -> Any:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _SIZE.match(value))):
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
    return value


def _check_mode(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, str) or not _MODE.match(value):
        raise VariableValueError(f"expected {spec.describe()} written as a quoted string, got {_got(value, spec)}")
    return value


def _as_list(value: Any) -> list[Any] | None:
    """A list, or what Ansible's check_type_list makes one of: "a, b" (split on commas) or a number."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")] if value.strip() else []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    return None


def _check_list(value: Any, spec: VariableSpec) -> Any:
    converted = _as_list(value)
    if converted is None:
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}")
    value = converted
    if spec.elements is None:
        for index, item in enumerate(value):
            _reject_newlines_deep(item, f"[{index}]")
        return value
    elements = _secret_too(spec.elements, spec)
    checked = [_nested(check_value, item, elements, f"[{index}]") for index, item in enumerate(value)]
    if spec.unique_by is not None:
        field_spec = (spec.elements.options or {}).get(spec.unique_by)
        field_type = field_spec.type if field_spec is not None else ""
        seen: dict[Any, int] = {}
        for index, item in enumerate(checked):
            key = item.get(spec.unique_by) if isinstance(item, dict) else None
            folded = same_key(key) if field_type in CASELESS_TYPES else same_address(key) if field_type in ADDRESS_TYPES else key
            if folded in seen:
                first = checked[seen[folded]].get(spec.unique_by)
                shown = _secret_too(field_spec or elements, elements)
                same = "address" if field_type in ADDRESS_TYPES else "name"
                how = f" ({_got(first, shown)} and {_got(key, shown)} are the same {same})" if first != key and not shown.secret else ""
                raise VariableValueError(
                    f"{spec.unique_by} {_got(key, shown)} is used twice (items {seen[folded]} and {index}){how}",
                    f"[{index}].{spec.unique_by}",
                )
            seen[folded] = index
    return checked


def same_address(value: Any) -> Any:
    """How an address compares: by value (2001:db8::1 is 2001:DB8:0::1)."""
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return value


def same_key(value: Any) -> Any:
    """How a case-insensitive name compares: DNS names, Postfix table keys."""
    return value.lower().rstrip(".") if isinstance(value, str) else value


def _check_dict(value: Any, spec: VariableSpec) -> Any:
    if not isinstance(value, dict):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}")
    if spec.options is None:
        if spec.keys is None and spec.values is None:
            for key, item in value.items():
                _single_line(str(key), spec)
                _reject_newlines_deep(item, f".{key}")
            return value
        return _check_free_dict(value, spec)
    result: dict[str, Any] = {}
    for key in value:
        if key not in spec.options:
            known = ", ".join(sorted(spec.options))
            raise VariableValueError(f"unknown field {key!r} (expected: {known})", f".{key}")
    for key, option in spec.options.items():
        if key in value:
            result[key] = _nested(check_value, value[key], _secret_too(option, spec), f".{key}")
        elif option.required:
            raise VariableValueError(f"missing required field {key!r}", f".{key}")
        else:
            result[key] = option.default
    return result


def _check_free_dict(value: dict[Any, Any], spec: VariableSpec) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    seen: dict[Any, Any] = {}
    for key, item in value.items():
        if spec.keys is not None:
            if not isinstance(key, str):
                raise VariableValueError(f"key {key!r}: expected {spec.keys.describe()}, got {_kind(key)}")
            try:
                check_value(key, spec.keys)
            except VariableValueError as exc:
                raise VariableValueError(f"key {key!r}: {exc.message}") from None
            if spec.keys.type in CASELESS_TYPES:
                folded = same_key(key)
                if folded in seen:
                    raise VariableValueError(
                        f"keys {seen[folded]!r} and {key!r} are the same key (compared case-insensitively), so one would be lost"
                    )
                seen[folded] = key
        else:
            _single_line(str(key), spec)
        result[key] = _nested(check_value, item, spec.values, f".{key}") if spec.values is not None else item
        if spec.values is None:
            _reject_newlines_deep(item, f".{key}")
    return result


def _secret_too(inner: VariableSpec, outer: VariableSpec) -> VariableSpec:
    """Every part of a secret value is secret."""
    return replace(inner, secret=True) if outer.secret and not inner.secret else inner


def _nested(check: Callable[[Any, VariableSpec], Any], value: Any, spec: VariableSpec, path: str) -> Any:
    try:
        return check(value, spec)
    except VariableValueError as exc:
        raise VariableValueError(exc.message, path + exc.path) from None


def _reject_newlines_deep(value: Any, path: str) -> None:
    if isinstance(value, str):
        try:
            _single_line(value, _PLAIN)
        except VariableValueError as exc:
            raise VariableValueError(exc.message, path) from None
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
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
    if any(part in (".", "..") for part in text.split("/")):
        # Apache's <Directory> never matches such a path, and two spellings of one folder are one folder.
        raise VariableValueError(f"expected {spec.describe()} without . or .. parts, got {_got(value, spec)}")
    return value


def _format_string(value: Any, spec: VariableSpec, pattern: re.Pattern[str], why: str = "") -> str:
    text = _check_string(value, spec)
    if not isinstance(value, str) or not pattern.match(text):
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}" + (f" ({why})" if why else ""))
    return text


def _check_extension(value: Any, spec: VariableSpec) -> Any:
    return _format_string(value, spec, _EXTENSION, "Apache reads a space as a second argument and each dot as another extension")


def _check_handler(value: Any, spec: VariableSpec) -> Any:
    return _format_string(value, spec, _HANDLER, "letters in lower case, digits and _ . + / : | = -")


def _check_require(value: Any, spec: VariableSpec) -> Any:
    text = _check_string(value, spec).strip()
    if not isinstance(value, str) or not re.match(r"^[A-Za-z][A-Za-z-]*(\s|$)", text):
        why = "it starts with a provider: all, ip, host, user, expr..."
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)} ({why})")
    apache_line_text(text)
    return value


def apache_no_variables(text: str) -> None:
    """Apache replaces ${NAME} on every config line before reading it, quoted or not."""
    if re.search(r"\$\{[^}]*\}", text):
        raise VariableValueError(
            f"{text!r} holds ${{...}}, which Apache replaces with a variable on every config line (no quoting stops it)"
        )


def apache_line_text(text: str) -> None:
    """What an Apache config line written as it is cannot hold with its meaning kept."""
    apache_no_variables(text)
    if text.rstrip(" \t").endswith("\\"):
        raise VariableValueError(f"{text!r} ends with a backslash, which joins the next config line to this one")


def _check_postfix_parameter(value: Any, spec: VariableSpec) -> Any:
    return _format_string(value, spec, _POSTFIX_PARAMETER, "letters, digits and _, starting with a letter")


def postfix_text(text: str) -> None:
    """What a Postfix value can hold: main.cf and master.cf ``-o`` read the same way."""
    if text != text.strip(" \t"):
        raise VariableValueError(f"{text!r} starts or ends with whitespace, which Postfix removes")
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            raise VariableValueError(f"{text!r} has a '}}' without its '{{': Postfix reads {{ }} as grouping (master.cf would split it)")
    if depth:
        raise VariableValueError(f"{text!r} has a '{{' without its '}}': Postfix reads {{ }} as grouping (master.cf would split it)")


def _check_postfix_value(value: Any, spec: VariableSpec) -> Any:
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        where = f"[{index}]" if isinstance(value, list) else ""
        if isinstance(item, (bool, int, float)):
            continue
        if not isinstance(item, str):
            raise VariableValueError(f"expected {spec.describe()}, got {_kind(item)}", where)
        try:
            _single_line(item, spec)
            postfix_text(item)
        except VariableValueError as exc:
            raise VariableValueError(exc.message, where) from None
    return value


def _check_lookup_key(value: Any, spec: VariableSpec) -> Any:
    text = _check_string(value, spec)
    if not isinstance(value, str) or not text or re.search(r"\s", text) or text.startswith("#"):
        raise VariableValueError(
            f"expected {spec.describe()}, got {_got(value, spec)} (postmap ends a key at whitespace and skips a line that starts with #)"
        )
    return value


def _check_alias_name(value: Any, spec: VariableSpec) -> Any:
    return _format_string(value, spec, _ALIAS_NAME, "letters, digits and . _ + -; no domain")


def alias_target_text(text: str) -> None:
    if text.startswith(("|", "/", ":include:")):
        # Written inside double quotes; those and backslashes would end or escape them.
        if '"' in text or "\\" in text:
            raise VariableValueError(f"{text!r}: a command or file must not contain double quotes or backslashes")
        if text in ("|", "/", ":include:"):
            raise VariableValueError(f"{text!r}: names no command or file")
    elif not _ALIAS_ADDRESS.match(text):
        raise VariableValueError(
            f"{text!r} is not an address (user or user@domain), /file, |command or :include:/file "
            "(commas, spaces, quotes and parentheses are address syntax in aliases)"
        )


def _check_alias_target(value: Any, spec: VariableSpec) -> Any:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise VariableValueError("needs at least one target")
    for index, item in enumerate(items):
        where = f"[{index}]" if isinstance(value, list) else ""
        if not isinstance(item, str):
            raise VariableValueError(f"expected {spec.describe()}, got {_kind(item)}", where)
        try:
            _single_line(item, spec)
            alias_target_text(item)
        except VariableValueError as exc:
            raise VariableValueError(exc.message, where) from None
    return value


def _check_date(value: Any, spec: VariableSpec) -> Any:
    """YAML reads an unquoted 2026-12-01 as a date: both forms give the ISO text."""
    if isinstance(value, dt.datetime) or not isinstance(value, (dt.date, str)):
        raise VariableValueError(f"expected {spec.describe()}, got {_kind(value)}{_got(value, spec, ' ')}")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat() if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else _bad_date(value, spec)
    except ValueError:
        return _bad_date(value, spec)


def _bad_date(value: Any, spec: VariableSpec) -> Any:
    raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")


_CHECKS: dict[str, Callable[[Any, VariableSpec], Any]] = {
    "str": lambda value, spec: (_check_string(value, spec), value)[1],
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "list": _check_list,
    "dict": _check_dict,
    "raw": _check_raw,
    "path": _check_path,
    "ip": lambda value, spec: _check_ip(value, spec, None),
    "ipv4": lambda value, spec: _check_ip(value, spec, 4),
    "ipv6": lambda value, spec: _check_ip(value, spec, 6),
    "cidr": lambda value, spec: _check_ip(value, spec, None, _is_cidr),
    "hostname": _checked(lambda t: bool(_HOSTNAME.match(t))),
    "port": _check_port,
    "duration": _check_duration,
    "size": _check_size,
    "email": _checked(lambda t: bool(_EMAIL.match(t))),
    "mode": _check_mode,
    "file_extension": _check_extension,
    "apache_handler": _check_handler,
    "apache_require": _check_require,
    "postfix_parameter": _check_postfix_parameter,
    "postfix_value": _check_postfix_value,
    "lookup_key": _check_lookup_key,
    "alias_name": _check_alias_name,
    "alias_target": _check_alias_target,
    "listen": _check_listen,
    "address_port": _check_address_port,
    "inet_interface": _check_inet_interface,
    "date": _check_date,
    "domain": lambda value, spec: _format_string(value, spec, _DOMAIN_NAME, "letters, digits, - and dots, no trailing dot"),
    "interface": lambda value, spec: _format_string(
        value, spec, _INTERFACE, "at most 15 letters, digits and _ . -; an alias label such as eth0:1 is not an interface"
    ),
}
_PLAIN = VariableSpec("value")


def check_value(value: Any, spec: VariableSpec) -> Any:
    """Return the value (dict fields completed with defaults) or raise."""
    if value is None and not spec.required:
        return None
    if spec.secret:
        # Format checks (Postfix, Apache) quote the text they refuse: not a secret's.
        try:
            checked = _CHECKS[spec.type](value, spec)
        except VariableValueError as exc:
            raise VariableValueError(_hide(exc.message, value), exc.path) from None
    else:
        checked = _CHECKS[spec.type](value, spec)
    if spec.choices is not None and checked not in spec.choices:
        raise VariableValueError(f"expected {spec.describe()}, got {_got(value, spec)}")
    if spec.minimum is not None and isinstance(checked, (int, float)) and checked < spec.minimum:
        raise VariableValueError(f"must be at least {spec.minimum:g}, got {_got(value, spec)}")
    if spec.maximum is not None and isinstance(checked, (int, float)) and checked > spec.maximum:
        raise VariableValueError(f"must be at most {spec.maximum:g}, got {_got(value, spec)}")
    if spec.pattern is not None and isinstance(checked, str) and not re.fullmatch(spec.pattern, checked):
        raise VariableValueError(f"must match the pattern {spec.pattern!r}, got {_got(value, spec)}")
    return checked


def _got(value: Any, spec: VariableSpec, prefix: str = "") -> str:
    """The value as an error shows it: never a secret's, nor any part of it."""
    if spec.secret:
        return f"{prefix}(a secret value, not shown)" if prefix else "a secret value (not shown)"
    return prefix + repr(value)


def _hide(message: str, value: Any) -> str:
    """``message`` with every string of a secret ``value`` (as written, or quoted by repr) taken out."""
    texts: list[str] = []

    def collect(item: Any) -> None:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, (list, tuple)):
            for part in item:
                collect(part)
        elif isinstance(item, dict):
            for part in item.values():
                collect(part)

    collect(value)
    forms = {form for text in texts for form in (repr(text), repr(text)[1:-1], text) if len(form) >= 2}
    for form in sorted(forms, key=len, reverse=True):
        message = message.replace(form, "(a secret value, not shown)")
    return message


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    # isinstance, in this order: a bool is an int, and vault text or a LocatedDict is a str or a dict.
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list"), (dict, "a mapping"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)
