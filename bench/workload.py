"""The benchmark's workload: what each host gets, as templates all three tools render.

The files are those of the motd, fstab, postfix (three transports) and
apache roles, rendered by provision for each host and then wrapped as Jinja
templates (raw text plus one variable in /etc/motd), so that provision,
Ansible and pyinfra render the same templates with the same variables.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

HANDLERS = {"/etc/postfix/": "reload postfix", "/etc/apache2/": "reload apache"}
MARKER_FILE = "/etc/motd"


def role_vars(address: str, extra: list[str]) -> dict[str, Any]:
    return {
        "motd_message": "Benchmark host.",
        "fstab_entries": [
            {"device": "tmpfs", "mount_point": "/mnt/bench-cache", "fstype": "tmpfs", "options": ["size=16m", "mode=0750"]},
            {"device": "LABEL=data", "mount_point": "/srv/data", "fstype": "ext4", "options": ["defaults", "noatime"], "pass": 2},
        ],
        "postfix_inet_interfaces": [address],
        "postfix_transports": [
            {"name": f"out{i}", "bind_address": ip, "helo_name": f"out{i}.example.net"} for i, ip in enumerate(extra, start=1)
        ],
        "postfix_transport_selection": "sender",
        "postfix_sender_transports": {"@news.example.net": "out1", "@shop.example.net": "out2", "@mail.example.net": "out3"},
        "apache_listen": [f"{address}:80"],
        "apache_vhosts": [
            {
                "server_name": "www.example.net",
                "document_root": "/srv/www",
                "directories": [{"path": "/srv/www/upload", "limit_request_body": 100000}],
            }
        ],
    }


def build(folder: Path, hosts: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Render every host's files with provision, wrap them as templates; return each host's file list."""
    source = folder / "source"
    source.mkdir(parents=True)
    (source / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {h["name"]: role_vars(h["address"], h["extra_addresses"]) for h in hosts}}})
    )
    (source / "site.yml").write_text("- hosts: all\n  roles: [motd, fstab, postfix, apache]\n")
    rendered = folder / "rendered"
    subprocess.run(["provision", "render", "-i", str(source), "--out", str(rendered)], check=True, capture_output=True)
    templates = folder / "templates"
    files: dict[str, list[dict[str, str]]] = {}
    for host in hosts:
        entries = []
        for path in sorted(p for p in (rendered / host["name"]).rglob("*") if p.is_file()):
            dest = "/" + str(path.relative_to(rendered / host["name"]))
            text = path.read_text()
            body = "{% raw %}" + text + "{% endraw %}"
            if dest == MARKER_FILE:
                body += "bench marker {{ benchfiles_marker }}\n"
            target = templates / host["name"] / (dest.lstrip("/") + ".j2")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            handler = next((h for prefix, h in HANDLERS.items() if dest.startswith(prefix)), "refresh")
            mode = "0755" if dest.startswith("/etc/update-motd.d/") else "0644"
            entries.append({"dest": dest, "template": f"{host['name']}/{dest.lstrip('/')}.j2", "mode": mode, "handler": handler})
        files[host["name"]] = entries
    return files
