"""A lab that mixes Debian releases, as a fleet does while it upgrades."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provision.lab.lab import Lab
from tests.support.lab import NAMESPACE, engine_ready, run_roles

pytestmark = pytest.mark.lab


def provision(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=900, env=env)


def test_lab_up_mixes_suites_and_status_shows_each_release(tmp_path: Path) -> None:
    engine_ready()
    env = {**os.environ, "PROVISION_LAB_DIR": str(tmp_path), "PROVISION_LAB_NAMESPACE": NAMESPACE}
    up = provision("lab", "up", "--name", "mixed", "--hosts", "3", "--suite", "bullseye,bookworm", "--suite", "mixed-3=trixie", env=env)
    try:
        assert up.returncode == 1 and "2 suites (bullseye, bookworm) for 3 hosts" in up.stderr
        up = provision("lab", "up", "--name", "mixed", "--hosts", "3", "--suite", "bullseye,bookworm,trixie", env=env)
        assert up.returncode == 0, up.stderr
        rows = json.loads(provision("lab", "status", "--name", "mixed", "--json", env=env).stdout)
        releases = {row["host"]: row["release"].split()[0] for row in rows}
        assert releases == {"mixed-1": "bullseye", "mixed-2": "bookworm", "mixed-3": "trixie"}
        assert [row["suite"] for row in rows] == ["bullseye", "bookworm", "trixie"]
        # Each host really is that release: its own Python and OpenSSH.
        pythons = [provision("lab", "exec", "--name", "mixed", h, "--", "python3", "-V", env=env).stdout.split()[1] for h in releases]
        assert [p.rsplit(".", 1)[0] for p in pythons] == ["3.9", "3.11", "3.13"]
        banners = [row["ssh"] for row in rows]
        assert "OpenSSH_8.4" in banners[0] and "OpenSSH_9.2" in banners[1] and "OpenSSH_10." in banners[2]
        table = provision("lab", "status", "--name", "mixed", env=env).stdout
        assert "bullseye 11." in table and "trixie 13." in table
    finally:
        provision("lab", "down", "--name", "mixed", env=env)


@pytest.fixture(scope="module")
def mixed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    engine_ready()
    lab = Lab("releases", root=tmp_path_factory.mktemp("lab"), namespace=NAMESPACE)
    lab.up(names=["old-1", "new-1"], say=lambda text: None, suites={"old-1": "bullseye", "new-1": "trixie"})
    yield lab
    lab.down()


def postfix_vars(lab: Lab, name: str, **more: Any) -> dict[str, Any]:
    return {"postfix_inet_interfaces": [lab.host(name).address], "postfix_maillog_file": "/var/log/postfix.log", **more}


def test_one_inventory_converges_postfix_on_each_release_in_its_own_dialect(mixed_lab: Lab, tmp_path: Path) -> None:
    hosts = {name: postfix_vars(mixed_lab, name) for name in ("old-1", "new-1")}
    first = json.loads(run_roles(mixed_lab, tmp_path, ["postfix"], hosts).stdout)["hosts"]
    assert {name: result["status"] for name, result in first.items()} == {"old-1": "changed", "new-1": "changed"}, first
    for name, level in (("old-1", "2"), ("new-1", "3.6")):
        code, output = mixed_lab.exec(name, ["sh", "-c", "postconf -h compatibility_level; postconf -n 2>&1 >/dev/null; postfix status"])
        assert code == 0 and output.splitlines()[0] == level, output
    again = json.loads(run_roles(mixed_lab, tmp_path, ["postfix"], hosts, "check").stdout)["hosts"]
    assert all(result["status"] == "ok" and result["round_trips"] == 1 for result in again.values()), again
    assert again["old-1"]["versions"]["postfix"].startswith("3.5.") and again["new-1"]["versions"]["postfix"].startswith("3.10.")


def test_a_feature_the_old_release_lacks_is_refused_before_anything_is_pushed(mixed_lab: Lab, tmp_path: Path) -> None:
    asked = {"old-1": {"postfix_compatibility_level": "3.6", "postfix_main": {"smtp_tlsrpt_enable": True}}}
    _, before = mixed_lab.exec("old-1", ["sh", "-c", "sha256sum /etc/postfix/main.cf 2>&1; dpkg -l python3-aiosmtpd 2>&1 | tail -1"])
    done = run_roles(mixed_lab, tmp_path, ["postfix"], asked)
    result = json.loads(done.stdout)["hosts"]["old-1"]
    assert done.returncode == 1 and result["status"] == "failed" and result["round_trips"] == 1
    assert "host old-1 (Debian 11." in result["errors"][0] and "has postfix 3.5." in result["errors"][0]
    assert "variable postfix_compatibility_level = '3.6' needs postfix 3.6 or later" in result["errors"][0]
    mta = json.loads(run_roles(mixed_lab, tmp_path, ["python_mta"], {"old-1": {}}).stdout)["hosts"]["old-1"]
    assert mta["status"] == "failed" and mta["round_trips"] == 1
    assert "has python3 3.9." in mta["errors"][0] and "role python_mta needs python3 3.11 or later" in mta["errors"][0]
    _, after = mixed_lab.exec("old-1", ["sh", "-c", "sha256sum /etc/postfix/main.cf 2>&1; dpkg -l python3-aiosmtpd 2>&1 | tail -1"])
    assert after == before  # neither main.cf nor the MTA's packages were touched
