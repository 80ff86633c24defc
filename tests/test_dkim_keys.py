"""DKIM keys made on the host: the engine's generator round trip against the
fake host (the real agent on a temp folder, real openssl), and the TXT record
the controller writes, proven by signing with the host's key and verifying
with dkimpy against that record."""

from __future__ import annotations

import base64
import email.utils
from pathlib import Path
from typing import Any

import dkim
import pytest

from provision.connectors.base import ConnectionSettings
from provision.engine.converge import ConvergeOptions, HostResult, converge
from provision.roles.dkim import parse_record, record_name, txt_strings, txt_value, zone_line
from provision.state import DesiredState
from provision.testing.fake import FakeConnector

KEYS: list[dict[str, Any]] = [
    {"domain": "example.test", "selector": "r1", "algorithm": "rsa", "bits": 2048, "path": "/etc/opendkim/keys/example.test/r1.private"},
    {
        "domain": "example.test",
        "selector": "e1",
        "algorithm": "ed25519",
        "bits": 2048,
        "path": "/etc/opendkim/keys/example.test/e1.private",
    },
]


def desired(tmp_path: Path) -> DesiredState:
    data = {"keys": KEYS, "owner": "root", "group": "root", "records_dir": str(tmp_path / "dkim")}
    return DesiredState(host="mx1", generators=[("dkim_keys", data)])


def run(tmp_path: Path, root: Path, check: bool = False) -> tuple[HostResult, FakeConnector]:
    connector = FakeConnector(ConnectionSettings(name="mx1", host="mx1", root=str(root)))
    return converge(connector, desired(tmp_path), ConvergeOptions(check=check, run_id="t1"), []), connector


def signed_and_verified(key_file: Path, key: dict[str, Any], record: str) -> bool:
    message = (
        f"From: a@{key['domain']}\r\nTo: b@example.org\r\nSubject: hi\r\nDate: {email.utils.formatdate()}\r\n"
        "Message-ID: <1@example.test>\r\n\r\nbody\r\n"
    ).encode()
    private = key_file.read_bytes()
    if key["algorithm"] == "ed25519":
        # dkimpy takes the raw 32-byte seed, base64 (RFC 8463 keys); the host keeps PKCS#8 PEM.
        from cryptography.hazmat.primitives import serialization

        loaded = serialization.load_pem_private_key(private, password=None)
        private = base64.b64encode(
            loaded.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        )
    signature = dkim.sign(
        message,
        key["selector"].encode(),
        key["domain"].encode(),
        private,
        include_headers=[b"from", b"to", b"subject"],
        signature_algorithm=b"ed25519-sha256" if key["algorithm"] == "ed25519" else b"rsa-sha256",
    )

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == record_name(key)
        return record.encode()

    return bool(dkim.verify(signature + message, dnsfunc=dns))


def test_keys_are_made_on_the_host_once_and_their_records_written(tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    checked, _ = run(tmp_path, root, check=True)
    assert checked.status == "changed" and not (root / "etc/opendkim").exists()
    assert {f.path: f.reasons for f in checked.files} == {k["path"]: [f"DKIM key {record_name(k)} made on the host"] for k in KEYS}

    first, connector = run(tmp_path, root)
    assert first.status == "changed", first.errors
    assert connector.operations == ["probe", "stage", "commit"]
    for key in KEYS:
        key_file = root / key["path"].lstrip("/")
        assert key_file.stat().st_mode & 0o777 == 0o600
        line = (tmp_path / "dkim" / "mx1" / f"{record_name(key)}.txt").read_text()
        text = txt_value_from_zone(line)
        assert parse_record(text)["k"] == key["algorithm"]
        assert signed_and_verified(key_file, key, text)
    # The private key is in no answer the controller got.
    assert (
        "PRIVATE KEY" not in repr(connector.calls)
        and "PRIVATE" not in (tmp_path / "dkim" / "mx1").joinpath("r1._domainkey.example.test.txt").read_text()
    )

    before = {k["path"]: (root / k["path"].lstrip("/")).read_bytes() for k in KEYS}
    again, connector = run(tmp_path, root)
    assert again.status == "ok" and connector.operations == ["probe"]
    assert before == {k["path"]: (root / k["path"].lstrip("/")).read_bytes() for k in KEYS}


def txt_value_from_zone(line: str) -> str:
    inside = line[line.index("(") + 1 : line.rindex(")")]
    return "".join(part for part in inside.strip().strip('"').split('" "'))


def test_long_records_split_into_255_byte_strings() -> None:
    text = "v=DKIM1; k=rsa; p=" + "A" * 600
    parts = txt_strings(text)
    assert [len(p) for p in parts] == [255, 255, len(text) - 510] and "".join(parts) == text
    assert zone_line("s._domainkey.example.test", text).count('" "') == 2


def test_a_record_that_is_not_tag_value_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_record("v=DKIM1; k=rsa; p")


def test_txt_value_of_an_ed25519_key_is_the_raw_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert txt_value(pem) == "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()


def test_the_report_asks_for_certificates_only_of_the_certificates_generator(tmp_path: Path) -> None:
    from provision.report.expected import report_certificate_paths, report_key_paths
    from provision.roles.compiler import CompiledHost

    compiled = CompiledHost(desired(tmp_path), [], {"dkim_keys": [{"domain": "example.test", "selector": "r1"}]})
    assert report_certificate_paths(compiled) == []
    assert report_key_paths(compiled) == ["/etc/opendkim/keys/example.test/r1.private"]


def compiled_roles(make_tree: Any, roles: list[str]) -> Any:
    import yaml

    from provision.roles.compiler import Project

    keys = [{"domain": "example.test", "selector": "r1"}, {"domain": "example.test", "selector": "e1", "algorithm": "ed25519"}]
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1.example.test:\n",
            "host_vars/mx1.example.test.yml": yaml.safe_dump({"dkim_keys": keys, "dkim_address": "127.83.0.7"}),
            "site.yml": f"- hosts: all\n  roles: [{', '.join(roles)}]\n",
        }
    )
    return Project.load(folder).compile("mx1.example.test")


def test_with_postfix_one_opendkim_per_algorithm_is_each_instances_milter(make_tree: Any) -> None:
    compiled = compiled_roles(make_tree, ["dkim", "postfix"])
    files = {path: entry.content.decode() for path, entry in compiled.desired.files.items()}
    assert (
        "smtpd_milters = inet:127.83.0.7:8891, inet:127.83.0.7:8892\nnon_smtpd_milters = $smtpd_milters\n" in files["/etc/postfix/main.cf"]
    )
    assert "SignatureAlgorithm      rsa-sha256\n" in files["/etc/opendkim-rsa.conf"]
    assert "SignatureAlgorithm      ed25519-sha256\n" in files["/etc/opendkim-ed25519.conf"]
    assert "Socket                  inet:8892@127.83.0.7\n" in files["/etc/opendkim-ed25519.conf"]
    assert files["/etc/opendkim/SigningTable"].splitlines()[-1] == "*@example.test r1._domainkey.example.test"
    assert files["/etc/opendkim/KeyTable.ed25519"].splitlines()[-1] == (
        "e1._domainkey.example.test example.test:e1:/etc/opendkim/keys/example.test/e1.private"
    )
    assert "opendkim" in compiled.desired.packages
    assert [s.name for s in compiled.desired.services] == ["opendkim-rsa", "opendkim-ed25519", "postfix"]
    assert compiled.desired.generators[0][1]["owner"] == "opendkim"


def test_with_python_mta_the_mta_signs_itself(make_tree: Any) -> None:
    compiled = compiled_roles(make_tree, ["dkim", "python_mta"])
    assert "opendkim" not in compiled.desired.packages and {"python3-dkim", "python3-nacl"} <= set(compiled.desired.packages)
    assert not [p for p in compiled.desired.files if p.endswith(".conf") and "opendkim" in p]
    assert "milter" not in compiled.desired.files["/etc/postfix/main.cf"].content.decode()
    assert {"/etc/opendkim/KeyTable", "/etc/opendkim/KeyTable.ed25519"} <= set(compiled.desired.files)
    assert compiled.desired.generators[0][1]["owner"] == "root"


def compile_dkim(make_tree: Any, host_vars: dict[str, Any]) -> Any:
    import yaml

    from provision.roles.compiler import Project

    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    mx1.example.test:\n",
            "host_vars/mx1.example.test.yml": yaml.safe_dump(host_vars),
            "site.yml": "- hosts: all\n  roles: [dkim, postfix]\n",
        }
    )
    return Project.load(folder).compile("mx1.example.test")


def test_trusted_hosts_are_written_as_opendkim_looks_them_up(make_tree: Any) -> None:
    # opendkim matches a client by the text of its address masked to each prefix
    # (inet_ntop, then /N): any other spelling of a network matches no client.
    networks = ["127.83.6.7/24", "127.83.7.0/255.255.255.0", "2001:DB8:0:0::5/32", "::ffff:127.83.0.0/112", "::1/128"]
    compiled = compile_dkim(make_tree, {"dkim_keys": [{"domain": "example.test", "selector": "r1"}], "dkim_internal_hosts": networks})
    lines = compiled.desired.files["/etc/opendkim/TrustedHosts"].content.decode().splitlines()[1:]
    assert lines == ["127.83.6.0/24", "127.83.7.0/24", "2001:db8::/32", "::ffff:127.83.0.0/112", "::1/128"]


@pytest.mark.parametrize(
    ("host_vars", "message"),
    [
        # libmilter's Socket inet:PORT@ADDRESS is IPv4 (inet6: is another family and syntax).
        ({"dkim_address": "::1"}, "variable dkim_address: expected an IPv4 address"),
        ({"dkim_keys": [{"domain": "example.test.", "selector": "r1"}]}, r"variable dkim_keys\[0\]\.domain: expected a domain name"),
        ({"dkim_keys": [{"domain": "ex_ample.test", "selector": "r1"}]}, r"variable dkim_keys\[0\]\.domain"),
        ({"dkim_internal_hosts": ["fe80::%eth0 x/64"]}, r"variable dkim_internal_hosts\[0\]"),
        ({"dkim_records_dir": "records"}, "variable dkim_records_dir: expected an absolute path"),
        ({"dkim_records_dir": "/srv/../etc"}, "variable dkim_records_dir: expected an absolute path without . or .. parts"),
        # One DNS name: SELECTOR._domainkey.DOMAIN compares case-insensitively.
        (
            {
                "dkim_keys": [
                    {"domain": "example.test", "selector": "r1"},
                    {"domain": "Example.TEST", "selector": "R1", "algorithm": "ed25519"},
                ]
            },
            "names one domain and selector twice",
        ),
    ],
)
def test_values_opendkim_or_dns_would_read_otherwise_are_refused(make_tree: Any, host_vars: dict[str, Any], message: str) -> None:
    from provision.errors import ProvisionError

    with pytest.raises(ProvisionError, match=message):
        compile_dkim(make_tree, {"dkim_keys": [{"domain": "example.test", "selector": "r1"}], **host_vars})


def test_records_go_beside_the_inventory_unless_a_folder_is_given(make_tree: Any) -> None:
    keys = [{"domain": "example.test", "selector": "r1"}]
    default = compile_dkim(make_tree, {"dkim_keys": keys}).desired.generators[0][1]["records_dir"]
    assert default.endswith("/dkim") and Path(default).is_absolute()
    given = compile_dkim(make_tree, {"dkim_keys": keys, "dkim_records_dir": '/srv/dkim "records" #1 $x'}).desired.generators[0][1]
    assert given["records_dir"] == '/srv/dkim "records" #1 $x'
