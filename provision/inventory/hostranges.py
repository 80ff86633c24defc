"""Ansible's host range syntax: ``www[01:50].example.com``, ``db-[a:f]``."""

from __future__ import annotations

import re
import string

_RANGE = re.compile(r"\[([^\[\]]+)\]")


def expand_host_pattern(pattern: str) -> list[str]:
    """Expand every ``[start:end(:step)]`` in ``pattern``, left to right."""
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
    start, end = parts[0], parts[1]
    step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    if step <= 0:
        raise ValueError(f"host range [{spec}] in {pattern!r} needs a positive step")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        lo, hi = int(start), int(end)
        if lo > hi:
            raise ValueError(f"host range [{spec}] in {pattern!r} starts after it ends")
        return [str(n).zfill(width) for n in range(lo, hi + 1, step)]
    letters = string.ascii_letters
    if len(start) == 1 and len(end) == 1 and start in letters and end in letters:
        lo, hi = letters.index(start), letters.index(end)
        if lo > hi:
            raise ValueError(f"host range [{spec}] in {pattern!r} starts after it ends")
        return [letters[n] for n in range(lo, hi + 1, step)]
    raise ValueError(f"host range [{spec}] in {pattern!r} must be numbers or single letters")


_HOST_PORT = re.compile(r"^(?P<name>(?:[^:\[\]]|\[[^\]]*\])+):(?P<port>\d+)$")


def split_host_port(entry: str) -> tuple[str, int | None]:
    """Split ``name:port``, ``w[1:3]:2222`` and ``[v6]:port`` as Ansible does."""
    if entry.startswith("[") and "]:" in entry:
        address, _, port = entry[1:].partition("]:")
        if port.isdigit():
            return address, int(port)
    match = _HOST_PORT.match(entry)
    if match is not None:
        return match.group("name"), int(match.group("port"))
    return entry, None
