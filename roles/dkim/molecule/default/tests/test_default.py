"""Mail is signed by both keys, and each signature verifies against the key on the host.

Runs under ``provision test dkim`` (testinfra's docker:// backend). A message
goes in through Postfix's sendmail (non_smtpd_milters); the relay host does
not answer, so the signed message waits in the queue, where postcat reads it.
dkimpy verifies each DKIM-Signature with a key record made here from the
public half of the host's own private key; the TXT records provision wrote on
the controller must say the same.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

KEYS = {"rsa1": "rsa-sha256", "ed1": "ed25519-sha256"}


def record_from_host(host: Any, selector: str) -> str:
    """The key record (v=DKIM1; k=; p=) of the private key on the host, as RFC 6376 and RFC 8463 spell it."""
    pem = host.check_output(f"openssl pkey -in /etc/opendkim/keys/example.net/{selector}.private -pubout")
    key = serialization.load_pem_public_key(pem.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def records() -> Iterator[Path]:
    """The folder provision wrote the TXT records into (group_vars: the lab's own folder); removed afterwards."""
    folder = Path(os.environ["PROVISION_SCENARIO_INVENTORY"]).parent / "dkim-records"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_keys_are_private_to_the_signer(host: Any) -> None:
    for selector in KEYS:
        key = host.file(f"/etc/opendkim/keys/example.net/{selector}.private")
        assert key.mode == 0o600 and key.user == "opendkim"


def test_mail_is_signed_with_each_key_and_verifies(host: Any, records: Path) -> None:
    host.check_output("postsuper -d ALL")  # the one message below, alone in the queue (a kept lab's earlier run)
    host.check_output(
        "printf 'From: news@example.net\\nTo: someone@remote.example.org\\nSubject: scenario\\n\\nsigned body\\n'"
        " | sendmail -f news@example.net someone@remote.example.org"
    )
    # Deferred (the relay host does not answer): cleanup has given it its queue ID and milter headers.
    queued = []
    for _ in range(150):
        queued = [json.loads(line) for line in host.run("postqueue -j").stdout.splitlines()]
        if queued and all(entry["queue_name"] == "deferred" for entry in queued):
            break
        time.sleep(0.2)
    assert [entry["queue_name"] for entry in queued] == ["deferred"], host.run("tail -n 20 /var/log/mail.log").stdout
    message = host.check_output(f"postcat -hb -q {queued[0]['queue_id']}").encode()
    signatures = [line for line in message.splitlines() if line.startswith(b"DKIM-Signature:")]
    assert len(signatures) == 2, message.decode()

    by_name = {f"{selector}._domainkey.example.net.": record_from_host(host, selector) for selector in KEYS}

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return by_name[name.decode()].encode()

    verifier = dkim.DKIM(message)
    seen = {}
    for index in range(2):
        assert verifier.verify(idx=index, dnsfunc=lookup), (index, message.decode())
        seen[verifier.selector.decode()] = verifier.signature_fields[b"a"].decode()
    assert seen == KEYS

    # The TXT records provision wrote beside the lab: the same keys, to publish as they are.
    for name, record in by_name.items():
        written = (records / "signer1" / f"{name[:-1]}.txt").read_text()
        published = "".join(part for part in written.split('"')[1::2])
        assert published == record
