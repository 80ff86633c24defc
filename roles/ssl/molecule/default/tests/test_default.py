"""The private key is 0600 and root's, and it is the certificate's key.

Runs under ``provision test ssl`` (testinfra's docker:// backend).
"""

from __future__ import annotations

from typing import Any

KEY, CERT = "/etc/ssl/private/scenario.key", "/etc/ssl/certs/scenario.pem"


def test_key_is_private(host: Any) -> None:
    key = host.file(KEY)
    assert key.mode == 0o600 and key.user == "root" and key.group == "root"


def test_key_matches_the_certificate(host: Any) -> None:
    from_key = host.check_output(f"openssl pkey -in {KEY} -pubout")
    from_cert = host.check_output(f"openssl x509 -in {CERT} -noout -pubkey")
    assert from_key == from_cert and "BEGIN PUBLIC KEY" in from_key


def test_certificate_names_and_validity(host: Any) -> None:
    # -nameopt RFC2253: one spelling on every release (OpenSSL 3.5 on trixie prints "CN=" by default, 3.0 "CN = ").
    text = host.check_output(f"openssl x509 -in {CERT} -noout -subject -nameopt RFC2253 -ext subjectAltName")
    assert "subject=CN=tls1.example.net" in text
    assert "DNS:tls1.example.net" in text and "DNS:www.example.net" in text
    assert host.run(f"openssl x509 -in {CERT} -noout -checkend 86400").rc == 0
