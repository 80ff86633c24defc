"""The chosen MPM is the one that runs, and the vhost answers on its address.

Runs under ``provision test apache`` (testinfra's docker:// backend).
"""

from __future__ import annotations

from typing import Any


def _listen_address(host: Any) -> str:
    ports = host.file("/etc/apache2/ports.conf").content_string
    return next(line.split()[1] for line in ports.splitlines() if line.startswith("Listen "))


def test_the_worker_mpm_runs(host: Any) -> None:
    modules = host.check_output("apache2ctl -M 2>/dev/null")
    assert "mpm_worker_module" in modules and "mpm_event_module" not in modules
    assert host.process.filter(comm="apache2")
    address = _listen_address(host)
    # mod_status of the running server says which MPM it runs.
    status = host.check_output(
        f"python3 -c \"import urllib.request as u; print(u.urlopen(u.Request('http://{address}/server-status?auto', "
        "headers={'Host': 'web1.example.net'}), timeout=10).read().decode())\""
    )
    assert "ServerMPM: worker" in status


def test_config_is_valid_and_document_root_exists(host: Any) -> None:
    assert host.run("apache2ctl -t").rc == 0
    assert host.file("/srv/www/web1").is_directory
    assert host.socket(f"tcp://{_listen_address(host)}").is_listening
