"""smtp transports from master.cf: service name, bind address, HELO.

The same file the postfix role renders: a service whose command is
``smtp`` with ``-o smtp_bind_address=...`` and ``-o smtp_helo_name=...``
(continuation lines and ``-o { name = value }`` included), split by Postfix's
own rules so that a value reads here as it reads in Postfix.
"""

from __future__ import annotations

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


def split_arguments(text: str) -> list[str]:
    """Postfix's own split of master.cf fields (mystrtokq, then extpar).

    Whitespace separates arguments except inside { }; an argument that starts
    with "{" loses its outer braces and the whitespace just inside them.
    """
    arguments: list[str] = []
    current: list[str] = []
    level = 0
    for char in text:
        if char == "{":
            level += 1
        elif char == "}" and level > 0:
            level -= 1
        elif level == 0 and char in " \t\r\n":
            if current:
                arguments.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        arguments.append("".join(current))
    return [_extract(argument) for argument in arguments]


def _extract(argument: str) -> str:
    if not argument.startswith("{"):
        return argument
    level = 0
    for index, char in enumerate(argument):
        level += {"{": 1, "}": -1}.get(char, 0)
        if level == 0:
            if index != len(argument) - 1:
                raise ValueError(f"syntax error after '}}' in {argument!r}")
            return argument[1:-1].strip(" \t\r\n")
    raise ValueError(f"missing '}}' in {argument!r}")


def _options(arguments: list[str]) -> dict[str, str]:
    """``-o name=value`` and ``-o { name = value }``, read as Postfix's split_nameval does."""
    options: dict[str, str] = {}
    words = iter(arguments)
    for word in words:
        if word == "-o":
            setting = next(words, "")
        elif word.startswith("-o"):
            setting = word[2:]
        else:
            continue
        name, equals, value = setting.partition("=")
        if equals and name.strip() and not any(c.isspace() for c in name.strip()):
            options[name.strip()] = value.strip(" \t\r\n")
    return options


def smtp_transports(text: str) -> dict[str, SmtpTransport]:
    found = {}
    for entry in _entries(text):
        fields = split_arguments(entry)
        if len(fields) >= 8 and fields[1] == "unix" and fields[7] == "smtp":
            options = _options(fields[8:])
            bind = options.get("smtp_bind_address") or options.get("smtp_bind_address6", "")
            found[fields[0]] = SmtpTransport(fields[0], bind, options.get("smtp_helo_name", ""))
    return found


def delivery_services(text: str) -> set[str]:
    """The names of master.cf's ``unix`` services: the transports a NAME_ parameter of main.cf can be for."""
    return {fields[0] for fields in (entry.split() for entry in _entries(text)) if len(fields) >= 8 and fields[1] == "unix"}


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
