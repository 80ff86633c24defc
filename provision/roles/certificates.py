"""Keys and certificates: decided on the controller after the probe.

What a certificate file should contain depends on what the host has: a
valid certificate that still matches its key and names is left alone; a
missing, expiring or outdated one is replaced. The probe brings back each
certificate (public) and the public half of each key (computed on the host,
so the private key never travels to the controller), and :func:`plan_certificates`
turns them into files to push, like every other file.

Modes: ``self_signed`` and ``local_ca`` make the key and the certificate on
the controller (the CA stays on the controller); ``provided`` pushes PEM the
user supplies (a secret variable, or a file beside the inventory);
``csr`` has the host make its key (it never leaves the host) and brings the
certificate signing request back to a folder on the controller.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.agent.protocol import CsrSpec
from provision.errors import ProvisionError
from provision.state import DesiredFile

_ca_lock = threading.Lock()


@dataclass
class CertificatePlan:
    files: list[DesiredFile] = field(default_factory=list)
    csr_requests: list[CsrSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def normalized(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Certificates with their default paths filled in."""
    result = []
    for cert in data["certificates"]:
        entry = {k: v for k, v in cert.items() if v is not None}
        entry.setdefault("cert_path", f"/etc/ssl/certs/{cert['name']}.pem")
        entry.setdefault("key_path", f"/etc/ssl/private/{cert['name']}.key")
        result.append(entry)
    return result


def probe_paths(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(files whose content the probe returns, keys whose public half it returns)."""
    contents, keys = [], []
    for cert in normalized(data):
        contents.append(cert["cert_path"])
        keys.append(cert["key_path"])
    return contents, keys


def managed_paths(data: dict[str, Any]) -> list[str]:
    """Every file the certificates may write: probed like any declared file, so a kept one is seen as kept."""
    paths = []
    for cert in normalized(data):
        paths += [cert["cert_path"], cert["key_path"], *([cert["chain_path"]] if cert.get("chain_path") else [])]
    return paths


def _x509() -> Any:
    from cryptography import x509

    return x509


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _names(cert: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([cert["common_name"], *cert.get("san", [])]))


def _public_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem


def why_replace(cert: dict[str, Any], current_pem: bytes | None, key_public: str | None, renew_days: int, issuer: Any | None) -> str | None:
    """Why the host's certificate must be replaced, or None to keep it."""
    x509 = _x509()
    if not current_pem:
        return "missing"
    if not key_public:
        return "no key"
    try:
        current = x509.load_pem_x509_certificate(current_pem)
    except ValueError:
        return "unreadable"
    if _public_pem(current).strip() != key_public.strip().encode():
        return "does not match its key"
    if current.not_valid_after_utc - _now() < dt.timedelta(days=renew_days):
        return f"expires {current.not_valid_after_utc:%Y-%m-%d}, within {renew_days} days"
    try:
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        san = []
    if sorted(set(san)) != sorted(set(_names(cert))):
        return "names changed"
    if issuer is not None and current.issuer != issuer.subject:
        return "not issued by the local CA"
    return None


def _new_key(cert: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if cert.get("key_type", "rsa") == "ecdsa":
        curve = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}.get(int(cert.get("key_size") or 256))
        if curve is None:
            raise ProvisionError(f"certificate {cert['name']}: ecdsa key_size must be 256, 384 or 521")
        return ec.generate_private_key(curve)
    return rsa.generate_private_key(public_exponent=65537, key_size=int(cert.get("key_size") or 2048))


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem


def _build_cert(cert: dict[str, Any], key: Any, issuer_cert: Any | None, issuer_key: Any | None) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    x509 = _x509()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cert["common_name"])])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=int(cert.get("days") or 365)))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in _names(cert)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    signed = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
    pem: bytes = signed.public_bytes(serialization.Encoding.PEM)
    return pem


def local_ca(directory: Path, name: str = "provision local CA") -> tuple[Any, Any]:
    """The controller's CA (made once: key 0600 in ``directory``)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    x509 = _x509()
    key_file, cert_file = directory / "ca.key", directory / "ca.pem"
    with _ca_lock:
        if not key_file.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            now = _now()
            ca = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        key_cert_sign=True,
                        crl_sign=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(key, hashes.SHA256())
            )
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(_key_pem(key))
            cert_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return x509.load_pem_x509_certificate(cert_file.read_bytes()), loaded


def local_ca_pem(directory: str) -> str:
    """The local CA's certificate (made on first use), for hosts' trust stores."""
    from cryptography.hazmat.primitives import serialization

    certificate, _key = local_ca(Path(directory))
    pem: bytes = certificate.public_bytes(serialization.Encoding.PEM)
    return pem.decode()


def verify_pair(name: str, cert_pem: bytes, key_pem: bytes | None, chain_pem: bytes | None) -> None:
    """Validation before commit: the key matches the certificate, the chain verifies."""
    from cryptography.hazmat.primitives import serialization

    x509 = _x509()
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ProvisionError(f"certificate {name}: not a PEM certificate ({exc})") from None
    if key_pem is not None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ProvisionError(f"certificate {name}: the key is not an unencrypted PEM private key ({exc})") from None
        if _public_pem(key) != _public_pem(cert):
            raise ProvisionError(f"certificate {name}: the key does not match the certificate")
    if chain_pem:
        issuers = x509.load_pem_x509_certificates(chain_pem)
        try:
            cert.verify_directly_issued_by(issuers[0])
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base with ValueError
            raise ProvisionError(f"certificate {name}: not issued by the first certificate of its chain ({exc})") from None


def plan_certificates(
    host: str, data: dict[str, Any], contents: dict[str, bytes | None], public_keys: dict[str, str | None]
) -> CertificatePlan:
    plan = CertificatePlan()
    ca: tuple[Any, Any] | None = None
    for cert in normalized(data):
        mode, name = cert["mode"], cert["name"]
        notify = tuple(cert.get("notify") or ())
        owner, group = cert.get("owner") or "root", cert.get("group") or "root"
        key_mode = 0o640 if group != "root" else 0o600
        issuer = None
        if mode == "local_ca":
            ca = ca or local_ca(Path(data["ca_dir"]))
            issuer = ca[0]
        current = contents.get(cert["cert_path"])
        reason = why_replace(cert, current, public_keys.get(cert["key_path"]), int(data["renew_days"]), issuer)
        if mode == "provided":
            cert_pem, key_pem, chain_pem = _provided(cert, data)
            verify_pair(name, cert_pem, key_pem, chain_pem)
            plan.files.append(DesiredFile(cert["cert_path"], cert_pem, 0o644, owner, group, "ssl", name, notify=notify))
            plan.files.append(DesiredFile(cert["key_path"], key_pem, key_mode, owner, group, "ssl", name, secret=True, notify=notify))
            if cert.get("chain_path") and chain_pem:
                plan.files.append(DesiredFile(cert["chain_path"], chain_pem, 0o644, owner, group, "ssl", name, notify=notify))
            continue
        if mode == "csr":
            if not public_keys.get(cert["key_path"]) or not (Path(data["csr_dir"]) / f"{host}-{name}.csr").exists():
                plan.csr_requests.append(
                    {
                        "name": name,
                        "key_path": cert["key_path"],
                        "common_name": cert["common_name"],
                        "names": _names(cert),
                        "key_type": cert.get("key_type") or "rsa",
                        "key_size": cert.get("key_size"),
                        "key_mode": key_mode,
                        "owner": cert.get("owner"),
                        "group": cert.get("group"),
                    }
                )
            continue
        if reason is None:
            # Kept: the certificate (and the local CA's chain) as they are, so that their mode and owner are kept too.
            assert current is not None
            plan.files.append(DesiredFile(cert["cert_path"], current, 0o644, owner, group, "ssl", name, notify=notify))
            if cert.get("chain_path") and issuer is not None:
                plan.files.append(DesiredFile(cert["chain_path"], _pem(issuer), 0o644, owner, group, "ssl", name, notify=notify))
            continue
        plan.notes.append(f"certificate {name}: {reason}")
        key = _new_key(cert)
        issuer_key = ca[1] if (mode == "local_ca" and ca) else None
        cert_pem = _build_cert(cert, key, issuer, issuer_key)
        plan.files.append(DesiredFile(cert["key_path"], _key_pem(key), key_mode, owner, group, "ssl", name, secret=True, notify=notify))
        plan.files.append(DesiredFile(cert["cert_path"], cert_pem, 0o644, owner, group, "ssl", name, notify=notify))
        if cert.get("chain_path") and issuer is not None:
            plan.files.append(DesiredFile(cert["chain_path"], _pem(issuer), 0o644, owner, group, "ssl", name, notify=notify))
    return plan


def _pem(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = certificate.public_bytes(serialization.Encoding.PEM)
    return pem


def _provided(cert: dict[str, Any], data: dict[str, Any]) -> tuple[bytes, bytes, bytes | None]:
    base = Path(data["inventory_dir"])

    def read(pem_key: str, src_key: str) -> bytes | None:
        if cert.get(pem_key):
            return str(cert[pem_key]).encode()
        if cert.get(src_key):
            path = base / str(cert[src_key])
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ProvisionError(f"certificate {cert['name']}: cannot read {path}: {exc.strerror}") from None
        return None

    cert_pem, key_pem = read("cert_pem", "cert_src"), read("key_pem", "key_src")
    if cert_pem is None or key_pem is None:
        raise ProvisionError(f"certificate {cert['name']}: mode provided needs cert_pem or cert_src, and key_pem or key_src")
    return cert_pem, key_pem, read("chain_pem", "chain_src")
