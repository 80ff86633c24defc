"""Ansible Vault: read what ``ansible-vault`` writes (formats 1.1 and 1.2).

A vault payload is ``$ANSIBLE_VAULT;1.1;AES256`` (or ``1.2;AES256;LABEL``)
followed by hex lines holding salt, HMAC and ciphertext. The keys come from
PBKDF2-HMAC-SHA256 (10,000 iterations, 80 bytes: cipher key, HMAC key,
counter block); the HMAC-SHA256 of the ciphertext is checked before AES-256
in CTR mode decrypts it, then PKCS#7 padding is removed. Every primitive is
``cryptography``'s.

Decrypted text is a :class:`VaultText` (a ``str`` that says it came from a
vault) so that everything downstream can treat it as a secret: the compiler
masks it in diffs, ``provision inventory`` masks it, and the command line
masks every decrypted value in its error messages (see :func:`revealed`).
An inline ``!vault`` value stays an :class:`EncryptedValue` until something
needs its text, as in Ansible, so ``provision inventory --graph`` needs no
password; a value that is needed without a password is an error naming its
file and line, never data.
"""

from __future__ import annotations

import binascii
import functools
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import Location, ProvisionError

HEADER = "$ANSIBLE_VAULT"
DEFAULT_LABEL = "default"
_ITERATIONS = 10000
_SCRIPT_TIMEOUT = 300.0
"""A password script may ask its user (pinentry, a hardware key): generous, but never forever."""


class VaultError(ProvisionError):
    """Encrypted data that cannot be read: no password, a wrong one, a damaged payload."""


HOW_TO_GIVE = "give it with --vault-password-file FILE, --vault-id LABEL@SOURCE or --ask-vault-pass (or ANSIBLE_VAULT_PASSWORD_FILE)"


class VaultText(str):
    """Text that was decrypted from a vault: a secret wherever it goes.

    ``ciphertext`` is the vault payload it came from when it was an inline
    ``!vault`` value (``provision inventory`` prints that, as Ansible does);
    values of a whole encrypted file have none.
    """

    ciphertext: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiling runs in forked workers for large fleets: the mark must survive pickling.
        return (_vault_text, (str(self), self.ciphertext))


def _vault_text(text: str, ciphertext: str | None) -> VaultText:
    value = VaultText(text)
    value.ciphertext = ciphertext
    _remember(value)
    return value


@dataclass(frozen=True)
class EncryptedValue:
    """An inline ``!vault`` value, not yet decrypted; never mistaken for text."""

    ciphertext: str
    location: Location

    def __repr__(self) -> str:
        return f"<vault-encrypted value at {self.location}>"

    def __str__(self) -> str:
        # Anything that formats this without revealing it first is a bug; say where.
        return repr(self)


# --- the envelope ----------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    version: str
    cipher: str
    label: str | None
    salt: bytes
    mac: bytes
    ciphertext: bytes


def is_encrypted(data: bytes | str) -> bool:
    head = data[:20] if isinstance(data, bytes) else data[:20].encode("ascii", "replace")
    return head.lstrip().startswith(HEADER.encode() + b";")


def parse_envelope(text: str, where: Location) -> Envelope:
    lines = text.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0] != HEADER:
        raise VaultError("not an Ansible Vault payload (it must start with $ANSIBLE_VAULT;1.1;AES256)", where)
    version, cipher = header[1].strip(), header[2].strip()
    label = header[3].strip() if len(header) > 3 and header[3].strip() else None
    if version not in ("1.1", "1.2"):
        raise VaultError(f"vault format {version} is not supported (only 1.1 and 1.2, which ansible-vault writes since Ansible 2.4)", where)
    if cipher != "AES256":
        raise VaultError(f"vault cipher {cipher!r} is not supported (only AES256)", where)
    try:
        outer = binascii.unhexlify("".join(line.strip() for line in lines[1:]))
        salt_hex, mac_hex, cipher_hex = outer.split(b"\n", 2)
        return Envelope(version, cipher, label, binascii.unhexlify(salt_hex), binascii.unhexlify(mac_hex), binascii.unhexlify(cipher_hex))
    except (ValueError, binascii.Error):
        raise VaultError("the vault payload is damaged (its hex body does not decode)", where) from None


@functools.lru_cache(maxsize=4096)
def _derive(password: bytes, salt: bytes) -> bytes:
    # Cached: a value copied into many files shares its salt, and PBKDF2 is the slow part.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=_ITERATIONS).derive(password)


def decrypt_envelope(envelope: Envelope, password: bytes) -> bytes | None:
    """The plaintext, or None when the HMAC says this is not the password."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, hmac, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    material = _derive(password, envelope.salt)
    cipher_key, mac_key, counter = material[:32], material[32:64], material[64:]
    check = hmac.HMAC(mac_key, hashes.SHA256())
    check.update(envelope.ciphertext)
    try:
        check.verify(envelope.mac)
    except InvalidSignature:
        return None
    decryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(envelope.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


# --- passwords ---------------------------------------------------------------


@dataclass(frozen=True)
class VaultSecret:
    label: str
    password: bytes = field(repr=False)
    source: str


class Vault:
    """The passwords given for this run, tried as Ansible tries them: the
    secrets whose label matches the payload's vault id first, then the others
    (unless ``match_label_only``, Ansible's ``vault_id_match``)."""

    def __init__(self, secrets: list[VaultSecret] | None = None, match_label_only: bool = False) -> None:
        self.secrets = list(secrets or [])
        self.match_label_only = match_label_only

    def decrypt(self, text: str, where: Location) -> bytes:
        if not self.secrets:
            header = text.strip().split("\n", 1)[0].split(";")
            label = header[3].strip() if len(header) > 3 and header[3].strip() else DEFAULT_LABEL
            message = f"this is encrypted with Ansible Vault (vault id {label!r}) and no vault password was given: {HOW_TO_GIVE}"
            raise VaultError(message, where)
        envelope = parse_envelope(text, where)
        label = envelope.label or DEFAULT_LABEL
        candidates = [s for s in self.secrets if s.label == label]
        if not self.match_label_only:
            candidates += [s for s in self.secrets if s.label != label]
        for secret in candidates:
            plain = decrypt_envelope(envelope, secret.password)
            if plain is not None:
                return plain
        tried = ", ".join(f"{s.label} ({s.source})" for s in candidates) or "none with a matching vault id"
        raise VaultError(f"cannot decrypt this Ansible Vault payload (vault id {label!r}) with the password(s) given: tried {tried}", where)

    def decrypt_text(self, text: str, where: Location) -> str:
        plain = self.decrypt(text, where)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise VaultError("the decrypted vault payload is not UTF-8 text", where) from None

    def reveal(self, value: EncryptedValue) -> VaultText:
        return _vault_text(self.decrypt_text(value.ciphertext, value.location), value.ciphertext)


def reveal_tree(value: Any, vault: Vault | None) -> Any:
    """``value`` with every :class:`EncryptedValue` in it decrypted (the same
    object when there is none, so nothing is copied for plain variables)."""
    if isinstance(value, EncryptedValue):
        return (vault or Vault()).reveal(value)
    if isinstance(value, dict):
        changed = {k: reveal_tree(v, vault) for k, v in value.items()}
        if all(changed[k] is value[k] for k in value):
            return value
        copy = type(value)(value) if type(value) is not dict else dict(value)
        copy.update(changed)
        for attribute in ("locations", "location"):  # a LocatedDict keeps its file positions
            if hasattr(value, attribute):
                setattr(copy, attribute, getattr(value, attribute))
        return copy
    if isinstance(value, list):
        items = [reveal_tree(v, vault) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def contains_vault(value: Any) -> bool:
    """Whether a value holds encrypted or decrypted vault data anywhere."""
    if isinstance(value, (EncryptedValue, VaultText)):
        return True
    if isinstance(value, dict):
        return any(contains_vault(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_vault(v) for v in value)
    return False


def mark_decrypted(value: Any) -> Any:
    """Mark every string of a decrypted file as vault text, in place."""
    if isinstance(value, str) and not isinstance(value, VaultText):
        return _vault_text(value, None)
    if isinstance(value, dict):
        for key in value:
            value[key] = mark_decrypted(value[key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = mark_decrypted(item)
    return value


# Every value decrypted in this process, so that the command line can mask
# them in any message, whichever path a value took to get there.
_revealed: set[str] = set()
_revealed_lock = threading.Lock()
_MIN_MASKED = 4  # shorter values ("yes", "22") would mask unrelated text everywhere


def _remember(value: str) -> None:
    if len(value) >= _MIN_MASKED:
        with _revealed_lock:
            _revealed.add(str(value))


def revealed() -> list[str]:
    """Every decrypted value of this run (long enough to mask), longest first."""
    with _revealed_lock:
        return sorted(_revealed, key=len, reverse=True)


# --- where passwords come from ---------------------------------------------------

Prompt = Callable[[str], str]


def split_vault_id(text: str) -> tuple[str | None, str]:
    """``label@source`` as Ansible splits it; a bare source has no label."""
    if "@" not in text:
        return None, text
    label, source = text.split("@", 1)
    return label or None, source


def load_secret(label: str | None, source: str, prompt: Prompt | None, earlier: list[VaultSecret]) -> VaultSecret:
    """One password: ``prompt``, a file holding it, or an executable printing it."""
    name = label or DEFAULT_LABEL
    if source in ("prompt", "prompt_ask_vault_pass"):
        if prompt is None:
            raise VaultError(f"vault id {name!r} asks for a password, but there is no terminal to ask on")
        text = prompt("Vault password: " if source == "prompt_ask_vault_pass" else f"Vault password ({name}): ")
        if not text:
            raise VaultError(f"an empty vault password was given for vault id {name!r}")
        return VaultSecret(name, text.encode("utf-8"), "prompt")
    path = Path(source).expanduser()
    where = Location(str(path))
    if not path.exists():
        raise VaultError("the vault password file does not exist", where)
    if path.is_dir():
        raise VaultError("the vault password file is a folder", where)
    if os.access(path, os.X_OK):
        password = _run_password_script(path, label)
    else:
        try:
            password = path.read_bytes().strip()
        except OSError as exc:
            raise VaultError(f"cannot read the vault password file: {exc.strerror}", where) from None
        if is_encrypted(password):
            # A password file may itself be encrypted with a password given before it, as in Ansible.
            password = Vault(earlier).decrypt(password.decode("ascii", "replace"), where).strip(b"\r\n")
    if not password:
        raise VaultError("the vault password file gave an empty password", where)
    return VaultSecret(name, password, str(path))


def _run_password_script(path: Path, label: str | None) -> bytes:
    # A script named *-client (vault-keyring-client.py) is told which vault id is wanted.
    client = os.path.splitext(path.name)[0].endswith("-client")
    command = [str(path.resolve())] + (["--vault-id", label] if client and label else [])
    where = Location(str(path))
    try:
        done = subprocess.run(command, capture_output=True, timeout=_SCRIPT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise VaultError(f"the vault password script did not finish within {_SCRIPT_TIMEOUT:g}s", where) from None
    except OSError as exc:
        message = f"cannot run the vault password script ({exc.strerror}); if it is not a script, remove its executable bit"
        raise VaultError(message, where) from None
    reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if client and done.returncode == 2:
        raise VaultError(f"the vault password client script has no secret for vault id {label!r}: {reason[0]}", where)
    if done.returncode != 0:
        raise VaultError(f"the vault password script exited with status {done.returncode}: {reason[0]}", where)
    return done.stdout.strip(b"\r\n")


def build_vault(
    vault_ids: list[str],
    password_files: list[str],
    ask: bool,
    prompt: Prompt | None,
    match_label_only: bool = False,
) -> Vault:
    """The run's vault from ``--vault-id`` (in order), then ``--vault-password-file``
    (vault id ``default``), then ``--ask-vault-pass``, as Ansible orders them."""
    slugs = list(vault_ids) + [f"{DEFAULT_LABEL}@{path}" for path in password_files]
    if ask:
        slugs.append(f"{DEFAULT_LABEL}@prompt_ask_vault_pass")
    secrets: list[VaultSecret] = []
    for slug in slugs:
        label, source = split_vault_id(slug)
        if not source:
            raise VaultError(f"--vault-id {slug!r} names no password source (expected LABEL@FILE, LABEL@prompt or FILE)")
        secrets.append(load_secret(label, source, prompt, secrets))
    return Vault(secrets, match_label_only)
