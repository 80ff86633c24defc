"""A lab that mixes Debian releases, as a fleet does while it upgrades."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.lab import NAMESPACE, engine_ready

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
