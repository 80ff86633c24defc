"""Lab fixtures: real Debian containers with real sshd, started once per session.

The engine is started by scripts/start-docker.sh when none answers. Set
PROVISION_SKIP_LAB=1 to skip these tests on a machine without Docker (CI
never sets it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.lab.lab import Lab
from tests.conftest import ROOT

NAMESPACE = "provision-test"


def _engine_ready() -> None:
    if os.environ.get("PROVISION_SKIP_LAB") == "1":
        pytest.skip("PROVISION_SKIP_LAB=1")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "start-docker.sh")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"no Docker engine for the lab tests: {done.stderr.strip()}")


@pytest.fixture(scope="session")
def example_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three hosts named as in inventories/example (example-1..3)."""
    _engine_ready()
    lab = Lab("example", root=tmp_path_factory.mktemp("lab"), namespace=NAMESPACE)
    lab.up(3, say=lambda text: None)
    yield lab
    lab.down()


def inventory_args(lab: Lab, *extra: Path) -> list[str]:
    args = ["-i", str(ROOT / "inventories" / "example")]
    for path in extra:
        args += ["-i", str(path)]
    return [*args, "-i", str(lab.inventory_file)]
