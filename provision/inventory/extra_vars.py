"""``-e``/``--extra-vars`` as Ansible reads them: ``key=value`` pairs (values
stay text), a YAML or JSON mapping (``{...}``), or ``@FILE`` (YAML or JSON,
vault-encrypted or not). Several are merged in order, later ones winning."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from provision.errors import Location, ProvisionError
from provision.inventory.vault import Vault
from provision.yamlfile import LocatedDict, load_yaml_file, load_yaml_text

# The escapes Ansible decodes in key=value text (\n, \t, \u00e9, \x41, ...).
_ESCAPE = re.compile(r"\\(?:U[0-9a-fA-F]{8}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{1,3}|N\{[^}]+\}|[\\'\"abfnrtv])")
_OPENERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


def parse_extra_vars(items: list[str] | tuple[str, ...], vault: Vault | None = None) -> tuple[dict[str, Any], dict[str, Location]]:
    """The merged extra vars and where each was given."""
    values: dict[str, Any] = {}
    locations: dict[str, Location] = {}
    for item in items:
        if not item:
            continue
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            data = load_yaml_file(path, vault)
            where = Location(str(path))
        elif item[0] in "/.":
            raise ProvisionError(f"-e {item!r}: to read variables from a file, write -e @{item}")
        elif item[0] in "[{":
            data = load_yaml_text(item, "--extra-vars")
            where = Location("--extra-vars")
        else:
            data = parse_key_values(item)
            where = Location("--extra-vars")
        if not isinstance(data, dict):
            raise ProvisionError(f"-e {item!r}: extra vars must be key=value pairs, a mapping or @FILE holding a mapping", where)
        values.update(data)
        for key in data:
            found = data.where(key) if isinstance(data, LocatedDict) else None
            locations[key] = found or where
    return values, locations


def split_arguments(text: str) -> list[str]:
    """Split on blanks outside quotes and outside ``{{ }}``/``{% %}``, keeping the quotes."""
    tokens: list[str] = []
    current: list[str] = []
    quote: str | None = None
    closers: list[str] = []
    index = 0
    while index < len(text):
        char, pair = text[index], text[index : index + 2]
        if quote is not None:
            if char == "\\" and index + 1 < len(text):
                current.append(pair)
                index += 2
                continue
            if char == quote:
                quote = None
        elif pair in _OPENERS:
            closers.append(_OPENERS[pair])
            current.append(pair)
            index += 2
            continue
        elif closers and pair == closers[-1]:
            closers.pop()
            current.append(pair)
            index += 2
            continue
        elif char in "'\"":
            quote = char
        elif char.isspace() and not closers:
            if current:
                tokens.append("".join(current))
                current = []
            index += 1
            continue
        current.append(char)
        index += 1
    if quote is not None:
        raise ProvisionError(f"-e {text!r}: a {quote} quote is never closed")
    if current:
        tokens.append("".join(current))
    return tokens


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _decode_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: codecs.decode(m.group(0), "unicode-escape"), text)


def parse_key_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for token in split_arguments(text):
        decoded = _decode_escapes(token)
        key, sep, value = decoded.partition("=")
        if not sep or not key.strip():
            raise ProvisionError(f"-e {text!r}: expected key=value, got {token!r}")
        values[key.strip()] = _unquote(value.strip())
    return values
