"""smtp transports from master.cf: service name, bind address, HELO.

The same file the postfix role renders: a service whose command is
``smtp`` with ``-o smtp_bind_address=...`` and ``-o smtp_helo_name=...``
(continuation lines and ``-o { name = value }`` included).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class SmtpTransport:
    name: str
    bind_address: str = ""
    helo_name: str = ""


def _entries(text: str) -> list[str]:
    entries: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    return entries


def _options(arguments: str) -> dict[str, str]:
    # -o { name = value with spaces } first, then plain -o name=value.
    options = {m.group(1): m.group(2).strip() for m in re.finditer(r"-o\s*\{\s*(\w+)\s*=\s*([^}]*)\}", arguments)}
    plain = re.sub(r"-o\s*\{[^}]*\}", " ", arguments)
    words = shlex.split(plain)
    for index, word in enumerate(words):
        if word == "-o" and index + 1 < len(words) and "=" in words[index + 1]:
            name, _, value = words[index + 1].partition("=")
            options[name] = value
    return options


def smtp_transports(text: str) -> dict[str, SmtpTransport]:
    found = {}
    for entry in _entries(text):
        fields = entry.split(None, 8)
        if len(fields) >= 8 and fields[1] == "unix" and fields[7] == "smtp":
            options = _options(fields[8] if len(fields) > 8 else "")
            bind = options.get("smtp_bind_address") or options.get("smtp_bind_address6", "")
            found[fields[0]] = SmtpTransport(fields[0], bind, options.get("smtp_helo_name", ""))
    return found


def smtpd_maxproc(text: str) -> int | None:
    """The maxproc column of the ``smtpd`` inet service (Postfix's cap on SMTP
    sessions at once); None where it is ``-`` (default_process_limit) or absent."""
    for entry in _entries(text):
        fields = entry.split()
        if len(fields) >= 8 and fields[1] == "inet" and fields[7] == "smtpd":
            return None if fields[6] == "-" else int(fields[6].rstrip("?"))
    return None


def sender_map(text: str) -> dict[str, str]:
    """A Postfix lookup table's source (``key value`` lines): sender or @domain → transport."""
    table = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            table[parts[0].lower()] = parts[1].split(":", 1)[0]
    return table
