"""The ssl role on a real Debian host, consumed by real Postfix and Apache:
certificates from the controller's local CA verify over STARTTLS and HTTPS,
keys stay 0600, a short-lived certificate is renewed, a CSR is made on the host."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra  # type: ignore[import-untyped]  # pytest-testinfra ships no py.typed and there are no stubs

from provision.lab.lab import Lab
from tests.support.lab import module_lab, run_roles

pytestmark = pytest.mark.lab


tls_lab = module_lab("ssl", 1)


@pytest.fixture(scope="module")
def inventory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One inventory folder for the module, so the local CA (INVENTORY/.local-ca) stays the same."""
    return tmp_path_factory.mktemp("inventory")


def host_vars(lab: Lab, **ssl_changes: Any) -> dict[str, Any]:
    address = lab.host("ssl-1").address
    mail_cert = {
        "name": "mail",
        "common_name": "mail.example.net",
        "san": ["smtp.example.net"],
        "notify": ["reload postfix"],
        **ssl_changes,
    }
    return {
        "ssl_certificates": [
            mail_cert,
            {"name": "www", "common_name": "www.example.net", "key_type": "ecdsa", "notify": ["apache graceful"]},
        ],
        "postfix_myhostname": "mail.example.net",
        "postfix_inet_interfaces": [address],
        "postfix_maillog_file": "/var/log/postfix.log",
        "postfix_tls": {"cert_file": "/etc/ssl/certs/mail.pem", "key_file": "/etc/ssl/private/mail.key"},
        "apache_listen": [f"{address}:443"],
        "apache_vhosts": [
            {
                "server_name": "www.example.net",
                "listen": "*:443",
                "document_root": "/srv/www",
                "tls": {"cert_file": "/etc/ssl/certs/www.pem", "key_file": "/etc/ssl/private/www.key"},
            }
        ],
    }


def run(lab: Lab, folder: Path, values: dict[str, Any], command: str = "apply") -> subprocess.CompletedProcess[str]:
    # One folder for the whole module: the local CA lives beside the inventory.
    return run_roles(lab, folder, ["ssl", "postfix", "apache"], {"ssl-1": values}, command, fresh=False)


def sh(lab: Lab, command: str) -> str:
    code, output = lab.exec("ssl-1", ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def test_local_ca_certificates_verify_over_starttls_and_https(tls_lab: Lab, inventory_dir: Path) -> None:
    first = run(tls_lab, inventory_dir, host_vars(tls_lab))
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)["hosts"]["ssl-1"]
    assert "-----BEGIN" not in first.stdout  # no key, no certificate in the output
    address = tls_lab.host("ssl-1").address

    smtp = sh(
        tls_lab,
        f"openssl s_client -starttls smtp -connect {address}:25 -servername mail.example.net "
        "-verify_return_error -verify_hostname smtp.example.net </dev/null 2>&1 | grep -E 'Verify return code|Verification'",
    )
    assert "Verify return code: 0 (ok)" in smtp

    context = ssl.create_default_context(cafile=str(inventory_dir / ".local-ca" / "ca.pem"))
    with socket.create_connection((address, 443), timeout=10) as raw, context.wrap_socket(raw, server_hostname="www.example.net") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: www.example.net\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 ")

    files = testinfra.get_host(f"docker://{tls_lab.host('ssl-1').container}")
    for key in ("/etc/ssl/private/mail.key", "/etc/ssl/private/www.key"):
        assert files.file(key).mode == 0o600 and files.file(key).user == "root"
    assert "provision-local-ca" in sh(tls_lab, "ls /etc/ssl/certs")
    # A first converge restarts both (their restart supersedes the reload the certificates notify).
    assert {"restart postfix", "apache restart"} <= set(result["handlers"])
    assert not {"reload postfix", "apache graceful"} & set(result["handlers"])

    again = json.loads(run(tls_lab, inventory_dir, host_vars(tls_lab)).stdout)["hosts"]["ssl-1"]
    assert again["status"] == "ok" and again["changed"] == [] and again["round_trips"] == 1


def test_short_lived_certificate_is_drift_and_is_renewed(tls_lab: Lab, inventory_dir: Path) -> None:
    sh(tls_lab, "rm -f /etc/ssl/certs/mail.pem")  # so that the next run makes it anew
    assert run(tls_lab, inventory_dir, host_vars(tls_lab, days=1)).returncode == 0  # valid for 1 day only
    drift = run(tls_lab, inventory_dir, host_vars(tls_lab, days=1), "check")
    assert drift.returncode == 2
    assert "/etc/ssl/certs/mail.pem" in json.loads(drift.stdout)["hosts"]["ssl-1"]["changed"]
    before = sh(tls_lab, "openssl x509 -in /etc/ssl/certs/mail.pem -noout -enddate")
    renewed = run(tls_lab, inventory_dir, host_vars(tls_lab))
    assert renewed.returncode == 0
    assert sh(tls_lab, "openssl x509 -in /etc/ssl/certs/mail.pem -noout -enddate") != before
    assert run(tls_lab, inventory_dir, host_vars(tls_lab), "check").returncode == 0


def test_csr_key_is_made_on_the_host(tls_lab: Lab, inventory_dir: Path) -> None:
    values = host_vars(tls_lab)
    values["ssl_certificates"].append({"name": "bought", "common_name": "shop.example.net", "mode": "csr"})
    first = run(tls_lab, inventory_dir, values)
    assert first.returncode == 0, first.stdout + first.stderr
    csr = inventory_dir / "csr" / "ssl-1-bought.csr"
    assert csr.read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    request = x509.load_pem_x509_csr(csr.read_bytes())
    public = request.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert public.strip() == sh(tls_lab, "openssl pkey -in /etc/ssl/private/bought.key -pubout").strip()
    assert sh(tls_lab, "stat -c %a /etc/ssl/private/bought.key").strip() == "600"
    made = csr.read_text()
    # The CSR is written beside the inventory (INVENTORY/csr): the same inventory folder reads again.
    second = run(tls_lab, inventory_dir, values)
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads(second.stdout)["hosts"]["ssl-1"]
    assert again["status"] == "ok"
    assert csr.read_text() == made  # the key exists: no new request


def test_provided_certificate_whose_key_does_not_match_is_refused(tls_lab: Lab, inventory_dir: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "a.key"),
            "-out",
            str(tmp_path / "a.pem"),
            "-subj",
            "/CN=a.example.net",
            "-days",
            "2",
        ],
        capture_output=True,
        check=True,
    )
    subprocess.run(["openssl", "genrsa", "-out", str(tmp_path / "b.key"), "2048"], capture_output=True, check=True)
    values = host_vars(tls_lab)
    values["ssl_certificates"].append(
        {
            "name": "given",
            "common_name": "a.example.net",
            "mode": "provided",
            "cert_src": str(tmp_path / "a.pem"),
            "key_src": str(tmp_path / "b.key"),
        }
    )
    before = sh(tls_lab, "ls /etc/ssl/certs | sort | sha256sum")
    refused = run(tls_lab, inventory_dir, values)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "certificate given: the key does not match the certificate" in refused.stdout
    assert sh(tls_lab, "ls /etc/ssl/certs | sort | sha256sum") == before
    values["ssl_certificates"][-1]["key_src"] = str(tmp_path / "a.key")
    accepted = run(tls_lab, inventory_dir, values)
    assert accepted.returncode == 0, accepted.stdout
    assert "BEGIN PRIVATE KEY" not in accepted.stdout and "BEGIN RSA PRIVATE KEY" not in accepted.stdout
    assert sh(tls_lab, "stat -c %a /etc/ssl/private/given.key").strip() == "600"
