"""DKIM signing for provision-mta, from the tables the dkim role writes for opendkim.

The dkim role renders ``/etc/opendkim/KeyTable`` and ``SigningTable`` (and
their ``.ed25519`` siblings) from ``dkim_keys``, and makes each private key
on the host. provision-mta reads the same files, so one inventory signs the
same way on a Postfix host (opendkim) and a python_mta host (dkimpy, from
Debian's python3-dkim): every SigningTable pattern that matches the From:
address adds one DKIM-Signature (RSA and Ed25519 side by side, RFC 8463).

The tables are read again when one of them changes (a reload after a new
selector); without a KeyTable nothing is signed.
"""

from __future__ import annotations

import base64
import email.utils
import fnmatch
import logging
import os
import re
import threading
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

log = logging.getLogger("provision_mta.dkim")

FOLDER = Path(os.environ.get("PROVISION_MTA_DKIM_DIR", "/etc/opendkim"))
TABLES = ("", ".ed25519")
# The headers receivers look at; From is signed twice so that none can be added (opendkim's OversignHeaders).
SIGNED_HEADERS = [b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"mime-version", b"content-type"]
# PKCS#8 of an Ed25519 private key: this fixed prefix, then the 32-byte seed (RFC 8410 7).
ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


class KeyError_(Exception):
    """A key or table the signer cannot use (named, never its content)."""


@dataclass(frozen=True)
class Key:
    name: str
    domain: str
    selector: str
    algorithm: bytes
    private: bytes
    """As dkimpy takes it: PEM for RSA, the base64 seed for Ed25519."""


def _dkimpy_key(pem: bytes, name: str) -> tuple[bytes, bytes]:
    """(signature algorithm, key for dkimpy) from the PEM file openssl made on the host."""
    text = pem.decode("ascii", "replace")
    body = re.search(r"-----BEGIN PRIVATE KEY-----(.*?)-----END PRIVATE KEY-----", text, re.S)
    if body:
        der = base64.b64decode("".join(body.group(1).split()))
        if der.startswith(ED25519_PKCS8_PREFIX) and len(der) == len(ED25519_PKCS8_PREFIX) + 32:
            return b"ed25519-sha256", base64.b64encode(der[-32:])
    if "PRIVATE KEY-----" not in text:
        raise KeyError_(f"key {name}: not a PEM private key")
    return b"rsa-sha256", pem


def _table_lines(path: Path) -> list[list[str]]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line.split())
    return lines


def load(folder: Path) -> tuple[list[tuple[str, Key]], float]:
    """[(sender pattern, key)] in SigningTable order, and the tables' newest mtime."""
    rules: list[tuple[str, Key]] = []
    stamp = 0.0
    for suffix in TABLES:
        key_table, signing_table = folder / f"KeyTable{suffix}", folder / f"SigningTable{suffix}"
        if not key_table.exists():
            continue
        stamp = max(stamp, key_table.stat().st_mtime, signing_table.stat().st_mtime if signing_table.exists() else 0.0)
        keys: dict[str, Key] = {}
        for fields in _table_lines(key_table):
            if len(fields) != 2 or fields[1].count(":") < 2:
                raise KeyError_(f"{key_table}: expected 'NAME DOMAIN:SELECTOR:PATH', got {' '.join(fields)!r}")
            domain, selector, path = fields[1].split(":", 2)
            algorithm, private = _dkimpy_key(Path(path).read_bytes(), fields[0])
            keys[fields[0]] = Key(fields[0], domain.lower(), selector, algorithm, private)
        if signing_table.exists():
            for fields in _table_lines(signing_table):
                if len(fields) != 2 or fields[1] not in keys:
                    raise KeyError_(f"{signing_table}: {' '.join(fields)!r} names no key of {key_table}")
                rules.append((fields[0].lower(), keys[fields[1]]))
    return rules, stamp


class Signer:
    """The tables of one folder, read again when they change."""

    def __init__(self, folder: Path = FOLDER) -> None:
        self.folder = folder
        self._rules: list[tuple[str, Key]] = []
        self._stamp: float | None = None
        self._lock = threading.Lock()

    def _current(self) -> list[tuple[str, Key]]:
        if not os.path.isdir(self.folder):  # the usual case, no tables: one stat per message
            self._rules, self._stamp = [], None
            return []
        with self._lock:
            try:
                stamp = max((self.folder / f"{t}{s}").stat().st_mtime for t in ("KeyTable", "SigningTable") for s in TABLES
                            if (self.folder / f"{t}{s}").exists())  # fmt: skip
            except ValueError:  # no table at all: nothing to sign with
                self._rules, self._stamp = [], None
                return []
            if stamp != self._stamp:
                self._rules, self._stamp = load(self.folder)
            return self._rules

    def keys_for(self, from_address: str) -> list[Key]:
        address = from_address.lower()
        return [key for pattern, key in self._current() if fnmatch.fnmatchcase(address, pattern)]

    def sign(self, message: bytes) -> bytes:
        """``message`` with one DKIM-Signature per matching key prepended (unchanged when none matches)."""
        if not self._current():
            return message  # no tables: the usual case, and it costs a stat per table
        import dkim

        headers = BytesHeaderParser().parsebytes(message)
        _name, address = email.utils.parseaddr(str(headers.get("From", "")))
        keys = self.keys_for(address) if "@" in address else []
        signatures = []
        for key in keys:
            signatures.append(
                dkim.sign(
                    message,
                    key.selector.encode(),
                    key.domain.encode(),
                    key.private,
                    canonicalize=(b"relaxed", b"relaxed"),
                    signature_algorithm=key.algorithm,
                    include_headers=SIGNED_HEADERS,
                )
            )
        return b"".join(signatures) + message


_default: Signer | None = None


def sign(message: bytes) -> bytes:
    """The delivery agent's one call: sign with the host's tables, or leave the message as it is."""
    global _default
    if _default is None:
        _default = Signer()
    return _default.sign(message)
