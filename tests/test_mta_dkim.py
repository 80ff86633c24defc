"""provision-mta signs with the dkim role's tables (dkimpy): keys made as the
role makes them on a host (openssl genpkey, PEM), the KeyTable/SigningTable it
writes, signatures verified with dkimpy against the records the controller
derives from the public halves; and the real daemon signing what it relays."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from provision.roles.dkim import txt_value
from provision_mta.dkim import KeyError_, Signer
from tests.support.mta import Daemon, relay_config, smtp_client
from tests.support.smtp_sink import SmtpSink

# The MTA tests' block is 127.81.0.0/16, one /24 per module.
ADDRESS = "127.81.20.1"
SINK, SINK_PORT = "127.81.20.10", 2528
OUT1, OUT2 = "127.81.20.21", "127.81.20.22"

KEYS = {"r1": "RSA", "e1": "ed25519"}


def tables(folder: Path) -> dict[str, str]:
    """Keys and tables as the dkim role leaves them; the TXT record of each key."""
    (folder / "keys").mkdir(parents=True)
    records = {}
    for selector, algorithm in KEYS.items():
        key = folder / "keys" / f"{selector}.private"
        options = ["-algorithm", algorithm] + (["-pkeyopt", "rsa_keygen_bits:2048"] if algorithm == "RSA" else [])
        subprocess.run(["openssl", "genpkey", *options, "-out", str(key)], check=True, capture_output=True)
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        public = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        records[f"{selector}._domainkey.example.test"] = txt_value(public.decode())
    (folder / "KeyTable").write_text(f"# made by the role\nr1._domainkey.example.test example.test:r1:{folder}/keys/r1.private\n")
    (folder / "SigningTable").write_text("*@example.test r1._domainkey.example.test\n")
    (folder / "KeyTable.ed25519").write_text(f"e1._domainkey.example.test example.test:e1:{folder}/keys/e1.private\n")
    (folder / "SigningTable.ed25519").write_text("*@example.test e1._domainkey.example.test\n")
    return records


def verified(message: bytes, records: dict[str, str]) -> list[tuple[str, bool]]:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name.decode().rstrip(".")].encode()

    checker = dkim.DKIM(message)
    found = []
    for index in range(message.count(b"DKIM-Signature:")):
        ok = checker.verify(idx=index, dnsfunc=dns)
        found.append((checker.signature_fields[b"a"].decode(), bool(ok)))
    return sorted(found)


MESSAGE = b"From: Shop <orders@example.test>\r\nTo: c@example.org\r\nSubject: order\r\nMessage-ID: <1@example.test>\r\n\r\nthanks\r\n"


def test_rsa_and_ed25519_signatures_from_the_roles_tables(tmp_path: Path) -> None:
    records = tables(tmp_path / "opendkim")
    signed = Signer(tmp_path / "opendkim").sign(MESSAGE)
    assert verified(signed, records) == [("ed25519-sha256", True), ("rsa-sha256", True)]
    # Another domain matches no pattern: the message goes as it came.
    other = MESSAGE.replace(b"orders@example.test", b"orders@other.test")
    assert Signer(tmp_path / "opendkim").sign(other) == other


def test_a_changed_table_is_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "opendkim"
    tables(folder)
    signer = Signer(folder)
    assert len(signer.keys_for("a@example.test")) == 2
    (folder / "SigningTable").write_text("# the RSA key stops signing\n")
    (folder / "SigningTable.ed25519").write_text("")
    import os

    os.utime(folder / "SigningTable", (1, 2_000_000_000))  # a visibly new mtime, whatever the clock's resolution
    assert signer.keys_for("a@example.test") == []


def test_no_tables_sign_nothing_and_a_broken_table_is_named(tmp_path: Path) -> None:
    assert Signer(tmp_path / "none").sign(MESSAGE) == MESSAGE
    folder = tmp_path / "opendkim"
    tables(folder)
    (folder / "SigningTable").write_text("*@example.test no-such-key\n")
    with pytest.raises(KeyError_, match="names no key"):
        Signer(folder).sign(MESSAGE)


@pytest.fixture
def signing_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Daemon, dict[str, str]]]:
    records = tables(tmp_path / "opendkim")
    monkeypatch.setenv("PROVISION_MTA_DKIM_DIR", str(tmp_path / "opendkim"))
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    relay_config(running.config_directory, running.queue, ADDRESS, SINK, SINK_PORT, (OUT1, OUT2))
    running.start()
    yield running, records
    running.stop_if_running()


def test_the_daemon_signs_what_it_relays(signing_daemon: tuple[Daemon, dict[str, str]]) -> None:
    _daemon, records = signing_daemon
    with SmtpSink(SINK, SINK_PORT) as sink:
        with smtp_client(ADDRESS) as smtp:
            sender = "orders@example.test"
            smtp.sendmail(sender, ["c@example.org"], f"From: {sender}\r\nSubject: signed by provision-mta\r\n\r\nhello\r\n".encode())
        (message,) = sink.wait_for(1, timeout=30)
    assert verified(message.content, records) == [("ed25519-sha256", True), ("rsa-sha256", True)]
