"""The python_mta role on the controller: the postfix role's files from its
variables, the wheel it ships (installed for real with pip, run for real),
and what it refuses."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.errors import ProvisionError
from provision.roles.compiler import Project
from provision_mta.wheel import build_wheel, wheel_name

HOST = "appliance-1.example.test"
WHEEL = f"/var/lib/provision-mta/{wheel_name()}"


@pytest.fixture
def compile_mta(make_tree: Callable[[dict[str, str]], Path]) -> Callable[[dict[str, Any]], dict[str, bytes]]:
    def compile_with(host_vars: dict[str, Any]) -> dict[str, bytes]:
        folder = make_tree(
            {
                "hosts.yml": f"all:\n  hosts:\n    {HOST}:\n",
                f"host_vars/{HOST}.yml": yaml.safe_dump(host_vars),
                "site.yml": "- hosts: all\n  roles: [python_mta]\n",
            }
        )
        return {path: entry.content for path, entry in Project.load(folder).compile(HOST).desired.files.items()}

    return compile_with


def test_renders_the_postfix_files_from_postfix_variables(compile_mta: Callable[[dict[str, Any]], dict[str, bytes]]) -> None:
    files = compile_mta(
        {
            "postfix_inet_interfaces": ["127.0.0.5"],
            "postfix_transports": [{"name": "out1", "bind_address": "127.0.0.11", "helo_name": "out1.example.test"}],
            "postfix_transport_selection": "sender",
            "postfix_sender_transports": {"@news.example.test": "out1"},
            "python_mta_dns_server": "127.0.0.53:5353",
            "python_mta_nofile": 4096,
        }
    )
    main = files["/etc/postfix/main.cf"].decode()
    assert "inet_interfaces = 127.0.0.5\n" in main
    assert "sender_dependent_default_transport_maps = hash:/etc/postfix/sender_transport\n" in main
    assert "  -o smtp_bind_address=127.0.0.11\n" in files["/etc/postfix/master.cf"].decode()
    assert files["/etc/postfix/sender_transport"].decode().endswith("@news.example.test out1:\n")
    assert "--dns-server 127.0.0.53:5353" in files["/etc/init.d/provision-mta"].decode()
    assert "--dns-server 127.0.0.53:5353" in files["/etc/systemd/system/provision-mta.service"].decode()
    assert "\nLimitNOFILE=4096\n" in files["/etc/systemd/system/provision-mta.service"].decode()
    init = files["/etc/init.d/provision-mta"].decode()
    assert "\nNOFILE=4096\n" in init and "ulimit -n $NOFILE 2>/dev/null || ulimit -n \\$(ulimit -Hn); exec $DAEMON" in init
    assert files[WHEEL] == build_wheel()


@pytest.mark.parametrize(
    ("host_vars", "message"),
    [
        ({"postfix_mynetworks": ["10.0.0.0/33"]}, "postfix_mynetworks"),
        ({"postfix_instances": [{"name": "postfix-out", "inet_interfaces": ["127.0.0.6"]}]}, "provision-mta runs a single instance"),
        ({"postfix_access": {"client": {"192.0.2.1": "REJECT"}}}, "provision-mta does not implement"),
        ({"python_mta_dns_server": "ns1.example.test"}, "python_mta_dns_server"),
    ],
)
def test_refused_before_anything_is_rendered(
    compile_mta: Callable[[dict[str, Any]], dict[str, bytes]], host_vars: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProvisionError, match=message):
        compile_mta(host_vars)


def test_the_wheel_is_the_same_bytes_every_time_and_holds_only_the_mta() -> None:
    first = build_wheel()
    build_wheel.cache_clear()
    assert build_wheel() == first  # a managed file: a second apply must find it unchanged
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
    assert "provision_mta/daemon.py" in names and "provision_mta/nameserver.py" in names
    packages = {name.split("/")[0] for name in names if not name.startswith("provision_mta-")}
    assert packages == {"provision_mta"}


def test_the_wheel_installs_with_pip_offline_and_its_command_runs(tmp_path: Path) -> None:
    wheel = tmp_path / wheel_name()
    wheel.write_bytes(build_wheel())
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv")], check=True)
    pip = [str(tmp_path / "venv" / "bin" / "pip"), "install", "--quiet", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    config = tmp_path / "postfix"
    config.mkdir()
    (config / "main.cf").write_text("myhostname = a.example.test\nmynetworks = 127.0.0.0/8\nsome_postfix_knob = 1\n")
    command = str(tmp_path / "venv" / "bin" / "provision-mta")
    checked = subprocess.run([command, "-c", str(config), "check"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "some_postfix_knob is not supported" in checked.stderr
    (config / "main.cf").write_text("myhostname = a.example.test\nmessage_size_limit = lots\n")
    broken = subprocess.run([command, "-c", str(config), "check"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert broken.returncode == 1 and "main.cf" in broken.stderr and "lots" in broken.stderr


def test_roles_sharing_variables_in_a_circle_are_refused(make_tree: Callable[[dict[str, str]], Path]) -> None:
    folder = make_tree(
        {
            "hosts.yml": "all:\n  hosts:\n    a:\n",
            "site.yml": "- hosts: all\n  roles: [one]\n",
            "roles/one/role.yml": "variables_from: [two]\n",
            "roles/two/role.yml": "variables_from: [one]\n",
        }
    )
    with pytest.raises(ProvisionError, match="variables_from goes round in a circle: one -> two -> one"):
        Project.load(folder).compile("a")
