"""Certificate decisions on the controller: keep, or replace and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.errors import ProvisionError
from provision.roles.certificates import local_ca, plan_certificates, verify_pair

CERT: dict[str, Any] = {"name": "mail", "common_name": "mail.example.net", "san": ["smtp.example.net"], "mode": "local_ca"}


def data(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    return {
        "certificates": [{**CERT, **changes}],
        "renew_days": 30,
        "ca_dir": str(tmp_path / "ca"),
        "csr_dir": str(tmp_path / "csr"),
        "inventory_dir": str(tmp_path),
    }


def host_state(tmp_path: Path, **changes: Any) -> tuple[dict[str, bytes | None], dict[str, str | None]]:
    """What a host has after a first run: the certificate and its key's public half."""
    from cryptography.hazmat.primitives import serialization

    plan = plan_certificates("h", data(tmp_path, **changes), {}, {})
    files = {f.path: f.content for f in plan.files}
    key = serialization.load_pem_private_key(files["/etc/ssl/private/mail.key"] or b"", password=None)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"/etc/ssl/certs/mail.pem": files["/etc/ssl/certs/mail.pem"]}, {"/etc/ssl/private/mail.key": public.decode()}


def test_missing_certificate_is_made_with_a_secret_key(tmp_path: Path) -> None:
    plan = plan_certificates("h", data(tmp_path), {}, {})
    by_path = {f.path: f for f in plan.files}
    assert by_path["/etc/ssl/private/mail.key"].secret and by_path["/etc/ssl/private/mail.key"].mode == 0o600
    assert not by_path["/etc/ssl/certs/mail.pem"].secret
    assert plan.notes == ["certificate mail: missing"]
    from cryptography.hazmat.primitives.serialization import Encoding

    ca_cert, _ = local_ca(tmp_path / "ca")
    chain = ca_cert.public_bytes(Encoding.PEM)
    verify_pair("mail", by_path["/etc/ssl/certs/mail.pem"].content, by_path["/etc/ssl/private/mail.key"].content, chain)
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_valid_certificate_is_kept(tmp_path: Path) -> None:
    """Kept as it is: the same content (so its mode and owner are still managed), no new key."""
    contents, keys = host_state(tmp_path)
    plan = plan_certificates("h", data(tmp_path), contents, keys)
    assert [(f.path, f.content) for f in plan.files] == [("/etc/ssl/certs/mail.pem", contents["/etc/ssl/certs/mail.pem"])]
    assert plan.notes == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"san": ["smtp.example.net", "mx.example.net"]}, "names changed"),
        ({"days": 10}, "within 30 days"),
    ],
)
def test_replaced_when_names_change_or_expiry_nears(tmp_path: Path, changes: dict[str, Any], reason: str) -> None:
    contents, keys = host_state(tmp_path, days=changes.get("days", 365))
    plan = plan_certificates("h", data(tmp_path, **changes), contents, keys)
    assert reason in plan.notes[0] and len(plan.files) == 2


def test_key_mismatch_is_replaced(tmp_path: Path) -> None:
    contents, _ = host_state(tmp_path)
    _, other_keys = host_state(tmp_path)
    plan = plan_certificates("h", data(tmp_path), contents, other_keys)
    assert plan.notes == ["certificate mail: does not match its key"]


def test_group_makes_the_key_0640(tmp_path: Path) -> None:
    plan = plan_certificates("h", data(tmp_path, group="ssl-cert"), {}, {})
    assert {f.path: f.mode for f in plan.files}["/etc/ssl/private/mail.key"] == 0o640


def test_provided_key_must_match(tmp_path: Path) -> None:
    first = {f.path: f.content for f in plan_certificates("h", data(tmp_path), {}, {}).files}
    second = {f.path: f.content for f in plan_certificates("h", data(tmp_path), {}, {}).files}
    (tmp_path / "a.pem").write_bytes(first["/etc/ssl/certs/mail.pem"])
    (tmp_path / "b.key").write_bytes(second["/etc/ssl/private/mail.key"])
    with pytest.raises(ProvisionError, match="the key does not match the certificate"):
        plan_certificates("h", data(tmp_path, mode="provided", cert_src="a.pem", key_src="b.key"), {}, {})


def test_the_csr_folder_beside_the_inventory_is_not_read_as_one(tmp_path: Path) -> None:
    """The ssl role writes CSRs into INVENTORY/csr/ by default; the next run must still load the inventory."""
    from provision.inventory import load_inventory

    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    mx1:\n")
    (tmp_path / "csr").mkdir()
    (tmp_path / "csr" / "mx1-mail.csr").write_text("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
    assert list(load_inventory(tmp_path).hosts) == ["mx1"]
