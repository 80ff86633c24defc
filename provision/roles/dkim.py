"""DKIM keys: made on the host, only the public half comes back.

Like the ssl role's ``csr`` mode: the probe asks for the public half of
every declared key (``openssl pkey -pubout`` on the host); a key that does
not exist yet is made on the host in the staging round trip (0600, owned by
the signer), and its public half is returned. The private key never travels.
From the public key the controller writes the exact TXT record to publish,
``SELECTOR._domainkey.DOMAIN``, into a folder beside the inventory, and the
report compares it with what DNS serves.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.agent.protocol import KeySpec

KEY_DIR = "/etc/opendkim/keys"
# A TXT record's strings hold at most 255 bytes each (RFC 1035 3.3.14).
TXT_STRING = 255


@dataclass
class DkimPlan:
    key_requests: list[KeySpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def key_path(key: dict[str, Any]) -> str:
    return f"{KEY_DIR}/{key['domain']}/{key['selector']}.private"


def record_name(key: dict[str, Any]) -> str:
    return f"{key['selector']}._domainkey.{key['domain']}"


def probe_paths(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(files whose content the probe returns: none; keys whose public half it returns)."""
    return [], [key["path"] for key in data["keys"]]


def plan_keys(data: dict[str, Any], public_keys: dict[str, str | None]) -> DkimPlan:
    plan = DkimPlan()
    for key in data["keys"]:
        if public_keys.get(key["path"]):
            continue
        plan.notes.append(f"DKIM key {record_name(key)}: made on the host")
        plan.key_requests.append(
            {
                "path": key["path"],
                "algorithm": str(key["algorithm"]),
                "bits": int(key.get("bits") or 2048),
                "owner": data["owner"],
                "group": data["group"],
                "name": record_name(key),
            }
        )
    return plan


def public_key_value(public_pem: str) -> tuple[str, str]:
    """(k=, p=) of a DKIM key record from the host's public key (PEM).

    RSA: p= is the SubjectPublicKeyInfo in DER (RFC 6376 3.6.1); Ed25519:
    the raw 32-byte public key (RFC 8463 4)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = serialization.load_pem_public_key(public_pem.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    if isinstance(key, rsa.RSAPublicKey):
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "rsa", base64.b64encode(der).decode()
    raise ValueError(f"not an RSA or Ed25519 key: {type(key).__name__}")


def txt_value(public_pem: str) -> str:
    algorithm, value = public_key_value(public_pem)
    return f"v=DKIM1; k={algorithm}; p={value}"


def txt_strings(text: str) -> list[str]:
    """The record split into strings of at most 255 bytes (as DNS carries it)."""
    return [text[i : i + TXT_STRING] for i in range(0, len(text), TXT_STRING)] or [""]


def zone_line(name: str, text: str) -> str:
    """One zone-file line: NAME. IN TXT ( "..." "..." )."""
    strings = " ".join('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in txt_strings(text))
    return f"{name}. 3600 IN TXT ( {strings} )"


def save_records(host: str, data: dict[str, Any], public_keys: dict[str, str | None]) -> list[Path]:
    """Write each key's TXT record beside the inventory: RECORDS_DIR/HOST/SELECTOR._domainkey.DOMAIN.txt."""
    from provision.atomic import write_atomic

    written = []
    folder = Path(data["records_dir"]) / host
    for key in data["keys"]:
        pem = public_keys.get(key["path"])
        if not pem:
            continue
        target = folder / f"{record_name(key)}.txt"
        text = zone_line(record_name(key), txt_value(pem)) + "\n"
        if not target.exists() or target.read_text() != text:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(target, text.encode())
            written.append(target)
    return written


def parse_record(text: str) -> dict[str, str]:
    """Tags of a DKIM key record (RFC 6376 3.6.1), with dkimpy's tag=value parser."""
    from dkim.util import InvalidTagValueList, parse_tag_value

    try:
        tags = parse_tag_value(text.encode())
    except InvalidTagValueList as exc:
        raise ValueError(str(exc)) from None
    return {name.decode(): re.sub(r"\s+", "", value.decode()) if name == b"p" else value.decode() for name, value in tags.items()}
