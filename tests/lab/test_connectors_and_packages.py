"""Connectors and package/service management against real lab hosts:
the docker connector, SSH through a jump host, apt installs from Debian's
mirror, services started through their init scripts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra  # type: ignore[import-untyped]  # pytest-testinfra ships no py.typed and there are no stubs

from provision.lab.lab import Lab
from tests.conftest import write_tree

pytestmark = pytest.mark.lab


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["provision", *args], capture_output=True, text=True, check=False, timeout=1200)


def test_docker_connector_converges_a_container(example_lab: Lab, tmp_path: Path) -> None:
    container = example_lab.host("example-3").container
    inventory = write_tree(
        tmp_path,
        {
            "hosts.yml": (
                f"all:\n  hosts:\n    boxed:\n      connection: docker\n      container: {container}\n      motd_message: via docker exec\n"
            ),
            "site.yml": "- hosts: all\n  roles: [motd]\n",
        },
    )
    first = provision("apply", "-i", str(inventory), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["hosts"]["boxed"]["changed"][0] == "/etc/motd"
    assert "via docker exec" in testinfra.get_host(f"docker://{container}").file("/etc/motd").content_string
    again = json.loads(provision("apply", "-i", str(inventory), "--json").stdout)
    assert again["hosts"]["boxed"]["status"] == "ok" and again["hosts"]["boxed"]["round_trips"] == 1


def test_ssh_through_a_jump_host(example_lab: Lab, tmp_path: Path) -> None:
    jump, target = example_lab.host("example-1"), example_lab.host("example-2")
    inventory = write_tree(
        tmp_path,
        {
            "hosts.yml": (
                "all:\n  hosts:\n    example-2:\n"
                f"      proxy_jump: root@{jump.address}:22\n      motd_message: reached through a jump host\n"
            ),
            "site.yml": "- hosts: all\n  roles: [motd]\n",
        },
    )
    done = provision("apply", "-i", str(inventory), "-i", str(example_lab.inventory_file), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    motd = testinfra.get_host(f"docker://{target.container}").file("/etc/motd").content_string
    assert "reached through a jump host" in motd
    assert json.loads(done.stdout)["hosts"]["example-2"]["changed"][0] == "/etc/motd"


def test_packages_come_from_the_mirror_and_services_are_started(example_lab: Lab, tmp_path: Path) -> None:
    inventory = write_tree(
        tmp_path,
        {
            "hosts.yml": "all:\n  hosts:\n    example-1:\n",
            "site.yml": "- hosts: all\n  roles: [cron]\n",
            "roles/cron/role.yml": """
            description: cron, installed and running.
            packages: [cron]
            services:
              - name: cron
                state: started
            files:
              - dest: /etc/cron.d/provision-test
                content: "*/5 * * * * root true\\n"
        """,
        },
    )
    args = ["-i", str(inventory), "-i", str(example_lab.inventory_file), "--limit", "example-1"]
    # Piped, as under cron or CI: the long step is said as it starts, the host as it ends.
    first = provision("apply", *args)
    assert first.returncode == 0, first.stdout + first.stderr
    progress = first.stderr.splitlines()
    assert progress[0] == "example-1: installing package cron..." and progress[1].startswith("[1/1] example-1: changed, ")
    (run,) = json.loads(provision("history", "--host", "example-1", "--json", "--last", "1").stdout)
    result = run["hosts"]["example-1"]
    assert result["packages"] == ["cron"] and result["round_trips"] == 3 and run["command"] == "apply"
    args.append("--json")
    host = testinfra.get_host(f"docker://{example_lab.host('example-1').container}")
    assert host.package("cron").is_installed
    assert host.process.filter(comm="cron")
    again = json.loads(provision("apply", *args).stdout)["hosts"]["example-1"]
    assert again["status"] == "ok" and again["round_trips"] == 1


def test_no_docker_engine_gives_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock", "PROVISION_LAB_DIR": str(tmp_path)}
    for command in (["lab", "status"], ["lab", "up", "--hosts", "1"]):
        done = subprocess.run(["provision", *command], capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "no Docker engine answers" in done.stderr
        assert "dockerd --bridge=none --iptables=false --ip6tables=false" in done.stderr
