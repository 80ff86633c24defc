"""Host entries as Ansible reads them: ``www[01:50].example.com:2222``,
``db-[a:f]``, ``mail[:5]``, ``[2001:db8::1]:2022``, a bare IPv6 address."""

from __future__ import annotations

import ipaddress
import re
import string

_RANGE = re.compile(r"\[([^\[\]]*)\]")
# A port follows a bracketed identifier, or a name whose colons are all inside [ranges].
_BRACKETED_PORT = re.compile(r"^\[(?P<name>.+)\]:(?P<port>[0-9]+)$")
_NAME_PORT = re.compile(r"^(?P<name>(?:[^:\[\]]|\[[^\]]*\])*):(?P<port>[0-9]+)$")
# What a range may look like inside each kind of identifier.
_NUMERIC_RANGE = re.compile(r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]")
_HEX_RANGE = re.compile(r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]", re.I)
_ALNUM_RANGE = re.compile(r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]", re.I)
_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2}|R)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2}|R)$")
_LABEL = r"(?:\w|R)(?:[\w-]|R)*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.UNICODE)


def _is_ipv4(text: str) -> bool:
    return _IPV4.match(_NUMERIC_RANGE.sub("R", text)) is not None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(_HEX_RANGE.sub("0", text))
    except ValueError:
        return False
    return True


def _is_hostname(text: str) -> bool:
    return _HOSTNAME.match(_ALNUM_RANGE.sub("R", text)) is not None


def parse_address(entry: str) -> tuple[str, int | None] | None:
    """``(host, port)`` when ``entry`` is a host name, IPv4 or IPv6 address
    (ranges allowed) with an optional port; None when it is none of these.

    Only a bracketed IPv6 address can carry a port: ``[2001:db8::1]:2022``.
    """
    name, port = entry, None
    for pattern in (_BRACKETED_PORT, _NAME_PORT):
        match = pattern.match(name)
        if match is not None:
            name, port = match.group("name"), int(match.group("port"))
    if _is_ipv4(name) or _is_ipv6(name) or _is_hostname(name):
        return name, port
    return None


def split_host_port(entry: str) -> tuple[str, int | None]:
    """Split ``name:port``, ``w[1:3]:2222`` and ``[v6]:port`` as Ansible does;
    an entry that is no address at all is kept whole, without a port."""
    return parse_address(entry) or (entry, None)


def expand_host_pattern(pattern: str) -> list[str]:
    """Expand every ``[start:end(:step)]`` in ``pattern``, left to right.

    An IPv6 address has colons but no brackets, so it is never expanded.
    """
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    results: list[str] = []
    for piece in _expand_range(match.group(1), pattern):
        results.extend(expand_host_pattern(head + piece + tail))
    return results


def _expand_range(spec: str, pattern: str) -> list[str]:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"host range [{spec}] in {pattern!r} must be [start:end] or [start:end:step]")
    start, end = parts[0] or "0", parts[1]
    if not end:
        raise ValueError(f"host range [{spec}] in {pattern!r} needs an end")
    try:
        step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    except ValueError:
        raise ValueError(f"host range [{spec}] in {pattern!r} has a step that is not a number") from None
    if step <= 0:
        raise ValueError(f"host range [{spec}] in {pattern!r} needs a positive step")
    letters = string.ascii_letters
    if len(start) == 1 and len(end) == 1 and start in letters and end in letters:
        lo, hi = letters.index(start), letters.index(end)
        if lo > hi:
            raise ValueError(f"host range [{spec}] in {pattern!r} starts after it ends")
        return [letters[n] for n in range(lo, hi + 1, step)]
    if start.isdigit() and end.isdigit():
        # A leading zero sets the width, and then both ends must have it (Ansible's rule).
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        if width and len(end) != width:
            raise ValueError(f"host range [{spec}] in {pattern!r} must write start and end with the same number of digits")
        if int(start) > int(end):  # Ansible would silently make no host
            raise ValueError(f"host range [{spec}] in {pattern!r} starts after it ends")
        return [str(n).zfill(width) for n in range(int(start), int(end) + 1, step)]
    raise ValueError(f"host range [{spec}] in {pattern!r} must be numbers or single letters")
