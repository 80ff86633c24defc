"""Files that provision shares with the host: only declared lines are managed.

A merger takes the file's current content (from the probe) and the role's
declared data, and returns the new content; every line it does not manage
stays exactly as it was, byte for byte. Pure functions, unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def fstab_escape(field: str) -> str:
    """fstab(5) octal escapes for the characters that would split a field."""
    return field.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def fstab_unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def fstab_line(entry: dict[str, Any]) -> str:
    options = ",".join(entry.get("options") or ["defaults"])
    fields = [
        fstab_escape(str(entry["device"])),
        fstab_escape(str(entry["mount_point"])),
        str(entry["fstype"]),
        options,
        str(entry.get("dump", 0)),
        str(entry.get("pass", 0)),
    ]
    return "\t".join(fields)


def _mount_point(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = stripped.split()
    return fstab_unescape(fields[1]) if len(fields) >= 2 else None


def merge_fstab(current: bytes, entries: list[dict[str, Any]]) -> bytes:
    """Present entries replace the line of their mount point (or are appended);
    absent ones remove it. Other lines, comments and blank lines are kept."""
    text = current.decode("utf-8", "surrogateescape")
    lines = text.splitlines(keepends=True)
    wanted = {str(e["mount_point"]): e for e in entries}
    placed: set[str] = set()
    result: list[str] = []
    for line in lines:
        mount_point = _mount_point(line)
        entry = wanted.get(mount_point) if mount_point is not None else None
        if entry is None:
            result.append(line)
            continue
        if entry.get("state", "present") == "absent" or mount_point in placed:
            continue  # removed, or a duplicate of a line already replaced
        ending = "\n" if line.endswith("\n") else ""
        result.append(fstab_line(entry) + ending)
        placed.add(str(mount_point))
    if result and not result[-1].endswith("\n"):
        result[-1] += "\n"
    for mount_point, entry in wanted.items():
        if entry.get("state", "present") == "present" and mount_point not in placed:
            result.append(fstab_line(entry) + "\n")
    return "".join(result).encode("utf-8", "surrogateescape")


MERGERS: dict[str, Callable[[bytes, Any], bytes]] = {"fstab": merge_fstab}
