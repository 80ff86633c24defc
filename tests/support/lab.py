"""Lab helpers: real Debian containers with real sshd, for tests/lab.

The engine is started by scripts/start-docker.sh when none answers. Set
PROVISION_SKIP_LAB=1 to skip these tests on a machine without Docker (CI
never sets it). PROVISION_TEST_NAMESPACE (default provision-test) prefixes
the containers and seeds their loopback addresses, so that two test runs on
one machine (two developers' branches) never share a host.
PROVISION_TEST_SUITE (bullseye, bookworm or trixie; default bookworm) is
the Debian release of every lab host the tests start: CI runs the engine's
lab tests once per suite with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.lab.lab import Lab
from tests.conftest import ROOT

NAMESPACE = os.environ.get("PROVISION_TEST_NAMESPACE", "provision-test")
SUITE = os.environ.get("PROVISION_TEST_SUITE", "bookworm")


def engine_ready() -> None:
    if os.environ.get("PROVISION_SKIP_LAB") == "1":
        pytest.skip("PROVISION_SKIP_LAB=1")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "start-docker.sh")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"no Docker engine for the lab tests: {done.stderr.strip()}")


def inventory_args(lab: Lab, *extra: Path) -> list[str]:
    args = ["-i", str(ROOT / "inventories" / "example")]
    for path in extra:
        args += ["-i", str(path)]
    return [*args, "-i", str(lab.inventory_file)]


def module_lab(name: str, count: int) -> Callable[[pytest.TempPathFactory], Iterator[Lab]]:
    """A module-scoped fixture: ``count`` lab hosts named NAME-1..N, removed afterwards."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
        engine_ready()
        lab = Lab(name, root=tmp_path_factory.mktemp("lab"), namespace=NAMESPACE)
        lab.up(count, say=lambda text: None, suites=SUITE)
        yield lab
        lab.down()

    return fixture


def run_roles(
    lab: Lab,
    folder: Path,
    roles: list[str],
    hosts: dict[str, dict[str, Any]],
    command: str = "apply",
    fresh: bool = True,
    limit: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Write an inventory (hosts with their vars, a site.yml applying ``roles``)
    and run ``provision COMMAND`` on it plus the lab's inventory, with --json.
    Only the hosts given are converged (``limit``, a host pattern, by default
    those hosts): another lab host would get the roles' defaults, such as
    Postfix on every address of the machine, which other tests' hosts share."""
    target = folder / f"inv-{uuid.uuid4().hex[:6]}" if fresh else folder
    target.mkdir(exist_ok=True)
    (target / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    # Only the hosts given: the lab's inventory names every lab host, and a host
    # converged with defaults (Postfix on all interfaces) can clash with others on this machine.
    (target / "site.yml").write_text(f"- hosts: {':'.join(hosts)}\n  roles: [{', '.join(roles)}]\n")
    return subprocess.run(
        ["provision", command, "-i", str(target), "-i", str(lab.inventory_file), "--json", "--limit", limit or ":".join(hosts)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )


def converged(done: subprocess.CompletedProcess[str], host: str) -> dict[str, Any]:
    """The host's part of a successful run's JSON document."""
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)["hosts"][host]
    return result
