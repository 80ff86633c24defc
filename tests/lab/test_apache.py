"""The apache role on real Debian hosts with real Apache: MPMs, graceful reloads
that let a slow download finish, upload limits, handlers, rotated logs."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from provision.lab.lab import Lab
from tests.support.lab import converged, module_lab, run_roles

pytestmark = pytest.mark.lab
SITE = "/srv/www/site"


web_lab = module_lab("apache", 1)


def web_vars(lab: Lab, **changes: Any) -> dict[str, Any]:
    host = lab.host("apache-1")
    values: dict[str, Any] = {
        "apache_listen": [f"{host.address}:80"],
        "apache_server_name": "apache-1.example.net",
        "apache_vhosts": [
            {
                "server_name": "www.example.net",
                "document_root": SITE,
                "directories": [
                    {"path": f"{SITE}/upload", "limit_request_body": 100000},
                    {"path": f"{SITE}/files", "options": ["+Indexes"]},
                ],
                "locations": [{"path": "/server-status", "handler": "server-status", "require": "all granted"}],
            }
        ],
    }
    values.update(changes)
    return values


def converge(lab: Lab, tmp_path: Path, host_vars: dict[str, Any]) -> dict[str, Any]:
    return converged(run_roles(lab, tmp_path, ["apache"], {"apache-1": host_vars}), "apache-1")


def _last_inventory(tmp_path: Path) -> Path:
    return max(tmp_path.glob("inv-*"), key=lambda p: p.stat().st_mtime)


def sh(lab: Lab, command: str) -> str:
    code, output = lab.exec("apache-1", ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def request(lab: Lab, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(lab.host("apache-1").address, 80, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": "www.example.net"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def parent_pid(lab: Lab) -> str:
    return sh(lab, "cat /var/run/apache2/apache2.pid").strip()


def test_each_mpm_is_what_apache_runs_and_switching_restarts(web_lab: Lab, tmp_path: Path) -> None:
    previous = None
    for mpm in ("prefork", "worker", "event"):
        result = converge(web_lab, tmp_path, web_vars(web_lab, apache_mpm=mpm))
        assert f"Server MPM:     {mpm}" in sh(web_lab, "apache2ctl -V")
        # Facts are what the probe saw: the next run reports the MPM now running.
        check = subprocess.run(
            ["provision", "check", "-i", str(_last_inventory(tmp_path)), "-i", str(web_lab.inventory_file), "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert json.loads(check.stdout)["hosts"]["apache-1"]["facts"]["apache_running_mpm"] == mpm
        if previous is not None:
            assert "apache restart" in result["handlers"]
        previous = mpm
    again = converge(web_lab, tmp_path, web_vars(web_lab, apache_mpm="event"))
    assert again["status"] == "ok" and again["handlers"] == [] and again["round_trips"] == 1


def test_vhost_change_is_a_graceful_reload(web_lab: Lab, tmp_path: Path) -> None:
    converge(web_lab, tmp_path, web_vars(web_lab))
    pid = parent_pid(web_lab)
    changed = web_vars(web_lab)
    changed["apache_vhosts"][0]["aliases"] = ["example.net"]
    result = converge(web_lab, tmp_path, changed)
    assert result["changed"] == ["/etc/apache2/provision/vhosts.conf"] and result["handlers"] == ["apache graceful"]
    assert parent_pid(web_lab) == pid
    assert "ServerAlias example.net" in sh(web_lab, "cat /etc/apache2/provision/vhosts.conf")


def test_graceful_reload_lets_a_slow_download_finish(web_lab: Lab, tmp_path: Path) -> None:
    converge(web_lab, tmp_path, web_vars(web_lab))
    size = 4 * 1024 * 1024
    sh(web_lab, f"head -c {size} /dev/urandom > {SITE}/big.bin")
    received: list[int] = []
    started = threading.Event()

    def slow_client() -> None:
        connection = http.client.HTTPConnection(web_lab.host("apache-1").address, 80, timeout=60)
        connection.request("GET", "/big.bin", headers={"Host": "www.example.net"})
        response = connection.getresponse()
        total = 0
        while chunk := response.read(32 * 1024):
            total += len(chunk)
            started.set()
            time.sleep(0.03)  # a slow client: about 1 MB/s
        received.append(total)
        connection.close()

    reader = threading.Thread(target=slow_client)
    reader.start()
    assert started.wait(30)
    changed = web_vars(web_lab)
    changed["apache_vhosts"][0]["aliases"] = ["slow.example.net"]
    assert converge(web_lab, tmp_path, changed)["handlers"] == ["apache graceful"]
    reader.join(120)
    assert received == [size]


def test_upload_limit_applies_to_its_directory_only(web_lab: Lab, tmp_path: Path) -> None:
    converge(web_lab, tmp_path, web_vars(web_lab))
    sh(web_lab, f"mkdir -p {SITE}/upload && echo ok > {SITE}/upload/x.txt && echo ok > {SITE}/other.txt")
    large, small = b"x" * 200_000, b"x" * 1000
    assert request(web_lab, "POST", "/upload/x.txt", large)[0] == 413
    assert request(web_lab, "POST", "/upload/x.txt", small)[0] != 413
    assert request(web_lab, "POST", "/other.txt", large)[0] != 413


def test_location_handler_and_directory_options(web_lab: Lab, tmp_path: Path) -> None:
    converge(web_lab, tmp_path, web_vars(web_lab))
    sh(web_lab, f"mkdir -p {SITE}/files && echo a > {SITE}/files/listed.txt")
    status, body = request(web_lab, "GET", "/server-status")
    assert status == 200 and b"Apache Server Status" in body
    status, body = request(web_lab, "GET", "/files/")
    assert status == 200 and b"Index of /files" in body and b"listed.txt" in body


def test_rotatelogs_and_debug_log_level(web_lab: Lab, tmp_path: Path) -> None:
    values = web_vars(web_lab, apache_log_level="debug", apache_access_log={"rotate": True, "interval": 86400})
    converge(web_lab, tmp_path, values)
    for _ in range(3):
        request(web_lab, "GET", "/server-status")
    today = sh(web_lab, "date +%Y-%m-%d").strip()
    log = f"/var/log/apache2/access_log.{today}"
    sh(web_lab, f"for i in $(seq 50); do [ -s {log} ] && break; sleep 0.1; done; test -s {log}")
    assert "GET /server-status" in sh(web_lab, f"cat {log}")
    assert ":debug]" in sh(web_lab, "cat /var/log/apache2/error.log")


def test_a_configuration_apache_refuses_is_named_by_its_real_path_and_changes_nothing(web_lab: Lab, tmp_path: Path) -> None:
    """A vhost whose certificate does not exist passes the controller's checks
    (the file could be put there by hand) but not ``apache2 -t``: check says it
    would fail, apply changes nothing, and both show Apache's own message with
    the file as the operator knows it, not the validator's temporary copy."""
    converge(web_lab, tmp_path, web_vars(web_lab))
    before = sh(web_lab, "sha256sum /etc/apache2/provision/vhosts.conf")
    vhost: dict[str, object] = {
        "server_name": "tls.example.net",
        "document_root": SITE,
        "listen": f"{web_lab.host('apache-1').address}:443",
    }
    vhost["tls"] = {"cert_file": "/etc/ssl/provision-missing.pem", "key_file": "/etc/ssl/provision-missing.key"}
    broken = web_vars(web_lab)
    broken["apache_vhosts"] = [*broken["apache_vhosts"], vhost]
    for command in ("check", "apply"):
        done = run_roles(web_lab, tmp_path, ["apache"], {"apache-1": broken}, command=command)
        assert done.returncode == 1, done.stdout + done.stderr
        error = json.loads(done.stdout)["hosts"]["apache-1"]["errors"][0]
        assert "SSLCertificateFile: file '/etc/ssl/provision-missing.pem' does not exist" in error, error
        assert "of /etc/apache2/provision/vhosts.conf" in error, error
        assert "/tmp/tmp." not in error and "/staging/" not in error, error
    assert sh(web_lab, "sha256sum /etc/apache2/provision/vhosts.conf") == before
