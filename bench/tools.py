"""The same work for each tool: a provision inventory, an Ansible playbook, a pyinfra deploy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent


def provision_project(folder: Path, lab_inventory: Path, files: dict[str, list[dict[str, str]]], marker: str) -> list[str]:
    shutil.copytree(BENCH / "roles", folder / "roles", dirs_exist_ok=True)
    hosts = {name: {"benchfiles_files": entries} for name, entries in files.items()}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"benchfiles_marker": marker}, "hosts": hosts}}))
    (folder / "site.yml").write_text("- hosts: all\n  roles: [benchfiles]\n")
    return ["-i", str(folder), "-i", str(lab_inventory)]


def ansible_project(folder: Path, lab: dict[str, Any], files: dict[str, list[dict[str, str]]], marker: str, forks: int) -> None:
    lines = ["[bench]"]
    for host in lab["hosts"]:
        lines.append(
            f"{host['name']} ansible_host={host['address']} ansible_user=root "
            f"ansible_ssh_private_key_file={lab['key']} benchfiles_marker={marker}"
        )
    (folder / "hosts.ini").write_text("\n".join(lines) + "\n")
    (folder / "ansible.cfg").write_text(
        "[defaults]\n"
        f"forks = {forks}\nhost_key_checking = True\ngathering = explicit\ninterpreter_python = /usr/bin/python3\n"
        # Its control sockets in the work folder: the bench closes them for a cold run.
        f"[ssh_connection]\npipelining = True\ncontrol_path_dir = {folder / 'cp'}\n"
        f"ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={lab['known_hosts']} "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\n"
    )
    # The same file list on every host (only the template folder differs), one task per file.
    sample = next(iter(files.values()))
    tasks = [
        {
            "name": f"template {entry['dest']}",
            "ansible.builtin.template": {
                "src": "templates/{{ inventory_hostname }}/" + entry["template"].split("/", 1)[1],
                "dest": entry["dest"],
                "mode": entry["mode"],
            },
            "notify": entry["handler"],
        }
        for entry in sample
    ]
    handlers = [{"name": name, "ansible.builtin.command": "true"} for name in ("reload postfix", "reload apache", "refresh")]
    (folder / "site.yml").write_text(
        yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks, "handlers": handlers}], sort_keys=False)
    )


def pyinfra_project(folder: Path, lab: dict[str, Any], files: dict[str, list[dict[str, str]]], marker: str) -> None:
    hosts = [
        (
            h["name"],
            {
                "ssh_hostname": h["address"],
                "ssh_user": "root",
                "ssh_key": lab["key"],
                "ssh_known_hosts_file": lab["known_hosts"],
                "ssh_strict_host_key_checking": "yes",
                "benchfiles_marker": marker,
            },
        )
        for h in lab["hosts"]
    ]
    (folder / "inventory.py").write_text(f"bench = {hosts!r}\n")
    sample = next(iter(files.values()))
    (folder / "deploy.py").write_text(
        "from pyinfra import host\n"
        "from pyinfra.operations import files, server\n\n"
        f"FILES = {json.dumps(sample)}\n"
        "changed = {'reload postfix': [], 'reload apache': [], 'refresh': []}\n"
        "for entry in FILES:\n"
        "    template = 'templates/' + host.name + '/' + entry['template'].split('/', 1)[1]\n"
        "    op = files.template(name='template ' + entry['dest'], src=template, dest=entry['dest'], mode=entry['mode'],\n"
        "                        benchfiles_marker=host.data.benchfiles_marker)\n"
        "    changed[entry['handler']].append(op)\n"
        "for name, ops in changed.items():\n"
        "    server.shell(name=name, commands=['true'], _if=lambda ops=ops: any(o.did_change() for o in ops))\n"
    )
