"""A second apply changes nothing, for every bundled role in every mode (issue
15.6): the host is converged, so the second run is one round trip and `check`
says in sync. Generated files (certificates) are probed like every other."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.lab.lab import Lab
from tests.support.lab import module_lab

pytestmark = pytest.mark.lab

idem_lab = module_lab("idem", 4)

Values = Callable[[Lab, Path], dict[str, Any]]


def _postfix(lab: Lab, host: str) -> dict[str, Any]:
    entry = lab.host(host)
    return {
        "postfix_myhostname": f"{host}.example.net",
        "postfix_inet_interfaces": [entry.address],
        "postfix_transports": [{"name": "out1", "bind_address": entry.extra_addresses[0], "helo_name": "out1.example.net"}],
    }


def _apache(lab: Lab, host: str, mpm: str) -> dict[str, Any]:
    address = lab.host(host).address
    return {
        "apache_mpm": mpm,
        "apache_listen": [f"{address}:80"],
        "apache_vhosts": [{"server_name": "www.example.net", "listen": f"{address}:80", "document_root": "/srv/www"}],
    }


def _provided(folder: Path) -> dict[str, Any]:
    """A certificate and key made with openssl, given as files (outside the inventory folder, which holds inventories only)."""
    certs = folder.parent / "certs"
    certs.mkdir(exist_ok=True)
    key, cert = str(certs / "given.key"), str(certs / "given.pem")
    if not (certs / "given.pem").exists():
        command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
        subprocess.run([*command, "-subj", "/CN=given.example.net", "-days", "30"], capture_output=True, check=True)
    return {"name": "given", "common_name": "given.example.net", "mode": "provided", "cert_src": cert, "key_src": key}


CASES: dict[str, tuple[str, list[str], Values]] = {
    "motd-default": ("idem-1", ["motd"], lambda lab, folder: {}),
    "motd-static-with-lines": ("idem-1", ["motd"], lambda lab, folder: {"motd_dynamic": False, "motd_lines": ["ops: x1234"]}),
    "sshd-banner": ("idem-1", ["sshd"], lambda lab, folder: {"sshd_banner_text": "authorised use only", "sshd_max_auth_tries": 4}),
    "fstab-mounted-tmpfs": (
        "idem-1",
        ["fstab"],
        lambda lab, folder: {
            "fstab_entries": [{"device": "tmpfs", "mount_point": "/mnt/idem", "fstype": "tmpfs", "options": ["size=1m"], "mount": True}]
        },
    ),
    "python_mta": (
        "idem-1",
        ["python_mta"],
        lambda lab, folder: {"postfix_myhostname": "idem-1.example.net", "postfix_inet_interfaces": [lab.host("idem-1").address]},
    ),
    "postfix-single": ("idem-2", ["postfix"], lambda lab, folder: _postfix(lab, "idem-2")),
    "postfix-instances": (
        "idem-2",
        ["postfix"],
        lambda lab, folder: {
            **_postfix(lab, "idem-2"),
            "postfix_instances": [{"name": "postfix-out", "inet_interfaces": [lab.host("idem-2").extra_addresses[1]]}],
        },
    ),
    "apache-prefork": ("idem-3", ["apache"], lambda lab, folder: _apache(lab, "idem-3", "prefork")),
    "apache-worker": ("idem-3", ["apache"], lambda lab, folder: _apache(lab, "idem-3", "worker")),
    "apache-event": ("idem-3", ["apache"], lambda lab, folder: _apache(lab, "idem-3", "event")),
    "ssl-self_signed": (
        "idem-4",
        ["ssl"],
        lambda lab, folder: {"ssl_certificates": [{"name": "self", "common_name": "self.example.net", "mode": "self_signed"}]},
    ),
    "ssl-local_ca": (
        "idem-4",
        ["ssl"],
        lambda lab, folder: {
            "ssl_certificates": [
                {"name": "ca", "common_name": "ca.example.net", "mode": "local_ca", "chain_path": "/etc/ssl/certs/ca-chain.pem"}
            ]
        },
    ),
    "ssl-provided": ("idem-4", ["ssl"], lambda lab, folder: {"ssl_certificates": [_provided(folder)]}),
    "ssl-csr": (
        "idem-4",
        ["ssl"],
        lambda lab, folder: {"ssl_certificates": [{"name": "bought", "common_name": "shop.example.net", "mode": "csr"}]},
    ),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One inventory folder for the module: the local CA and the CSRs live beside it."""
    return tmp_path_factory.mktemp("idem-inventory")


def provision(lab: Lab, folder: Path, command: str, host: str, roles: list[str], values: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {host: values}}}))
    (folder / "site.yml").write_text(f"- hosts: all\n  roles: [{', '.join(roles)}]\n")
    arguments = ["provision", command, "-i", str(folder), "-i", str(lab.inventory_file), "--limit", host, "--json"]
    done = subprocess.run(arguments, capture_output=True, text=True, check=False, timeout=1800)
    try:
        result: dict[str, Any] = json.loads(done.stdout)["hosts"][host]
    except (ValueError, KeyError):
        pytest.fail(f"provision {command}: {done.stdout}\n{done.stderr}")
    return done.returncode, result


@pytest.mark.parametrize("case", list(CASES))
def test_a_second_apply_changes_nothing(idem_lab: Lab, folder: Path, case: str) -> None:
    host, roles, make_values = CASES[case]
    values = make_values(idem_lab, folder)
    code, first = provision(idem_lab, folder, "apply", host, roles, values)
    assert code == 0, first["errors"]
    code, second = provision(idem_lab, folder, "apply", host, roles, values)
    assert code == 0, second["errors"]
    assert second["status"] == "ok", second
    assert second["changed"] == [] and second["handlers"] == [] and second["services"] == []
    assert second["round_trips"] == 1
    code, checked = provision(idem_lab, folder, "check", host, roles, values)
    assert code == 0 and checked["status"] == "ok", checked
