"""The host-side transaction on real Debian hosts, as a bad day would test it
(issue 15): the agent killed right after its renames, two applies 0.8 s
apart, a full file system under the destination folder, a rollback that
cannot restore everything, a reload whose new Listen cannot bind, settings
that would lock the operator out."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.lab.lab import Lab
from tests.support.lab import module_lab

pytestmark = pytest.mark.lab

txn_lab = module_lab("txn", 2)

# Test-only roles: each plays a part of a bad day through real files and handlers.
ROLES = {
    "crash": """
        variables:
          crash_text: {type: str, default: "0"}
        files:
          - dest: /etc/provision-crash-test
            content: "{{ crash_text }}\\n"
            notify: [crash once]
        handlers:
          # The agent dies right after its renames, before any other handler
          # runs (a host crash, an OOM kill): the first handler kills it.
          - name: crash once
            command: "if [ -e /run/provision-crash-once ]; then rm -f /run/provision-crash-once; kill -9 $PPID; fi"
    """,
    "breaker": """
        variables:
          breaker_text: {type: str, default: "1"}
        files:
          - dest: /etc/provision-breaker/a.conf
            content: "a {{ breaker_text }}\\n"
            notify: [breaker check]
          - dest: /mnt/provision-breaker/b.conf
            content: "b {{ breaker_text }}\\n"
            notify: [breaker check]
        handlers:
          # When told to, it fails after b.conf's file system went read-only (a disk that went bad).
          - name: breaker check
            command: "if [ -e /run/provision-break ]; then mount -o remount,ro /mnt/provision-breaker; exit 1; fi"
    """,
    "lockout": """
        login_check: true
        variables:
          lockout_deny: {type: bool, default: false}
        files:
          - dest: /etc/ssh/sshd_config.d/00-lockout.conf
            content: "{{ 'DenyUsers root' if lockout_deny else '# nobody denied' }}\\n"
            notify: [reload sshd for lockout]
        handlers:
          - name: reload sshd for lockout
            command: kill -HUP "$(cat /run/sshd.pid)"
    """,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory folder with the test roles; each run writes its hosts.yml and site.yml there."""
    base = tmp_path_factory.mktemp("txn-inventory")
    for name, text in ROLES.items():
        (base / "roles" / name).mkdir(parents=True)
        (base / "roles" / name / "role.yml").write_text(yaml.safe_dump(yaml.safe_load(text.replace("\n        ", "\n"))))
    return base


def provision(
    lab: Lab, folder: Path, roles: list[str], host: str, values: dict[str, Any], command: str
) -> subprocess.CompletedProcess[str]:
    """``provision COMMAND`` for one host of the lab (--limit), with --json."""
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {host: values}}}))
    (folder / "site.yml").write_text(f"- hosts: all\n  roles: [{', '.join(roles)}]\n")
    arguments = ["provision", command, "-i", str(folder), "-i", str(lab.inventory_file), "--limit", host, "--json"]
    return subprocess.run(arguments, capture_output=True, text=True, check=False, timeout=1200)


def run(lab: Lab, folder: Path, roles: list[str], host: str, values: dict[str, Any], command: str = "apply") -> tuple[int, dict[str, Any]]:
    done = provision(lab, folder, roles, host, values, command)
    try:
        document = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no JSON from provision {command}: {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = document["hosts"][host]
    return done.returncode, result


def sh(lab: Lab, host: str, command: str) -> str:
    code, output = lab.exec(host, ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def postfix_vars(lab: Lab, host: str, banner: str, transport: str = "out") -> dict[str, Any]:
    entry = lab.host(host)
    return {
        "postfix_myhostname": f"{host}.example.net",
        "postfix_inet_interfaces": [entry.address],
        "postfix_smtpd_banner": f"$myhostname ESMTP {banner}",
        "postfix_transports": [{"name": transport, "bind_address": entry.extra_addresses[0], "helo_name": f"{transport}.example.net"}],
    }


def greeting(address: str) -> str:
    """What the running smtpd says first: its live configuration, not its file."""
    with socket.create_connection((address, 25), timeout=10) as connection:
        return connection.recv(512).decode("ascii", "replace").strip()


def http_status(url: str) -> int:
    """The status Apache answers with (an empty document root is 403): proof it is up."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def apache_vars(lab: Lab, host: str, *ports: int, admin: str = "webmaster@example.net", root: str = "/srv/www") -> dict[str, Any]:
    address = lab.host(host).address
    return {
        "apache_listen": [f"{address}:{port}" for port in ports],
        "apache_server_admin": admin,
        "apache_vhosts": [{"server_name": f"{host}.example.net", "listen": f"{address}:{ports[0]}", "document_root": root}],
    }


# --- 1. a lost handler -----------------------------------------------------------


def test_handlers_owed_by_a_killed_agent_are_run_by_the_next_apply(txn_lab: Lab, folder: Path) -> None:
    address = txn_lab.host("txn-1").address
    code, first = run(txn_lab, folder, ["crash", "postfix"], "txn-1", {**postfix_vars(txn_lab, "txn-1", "before-kill"), "crash_text": "1"})
    assert code == 0, first["errors"]
    assert greeting(address).endswith("ESMTP before-kill")

    sh(txn_lab, "txn-1", "touch /run/provision-crash-once")
    values = {**postfix_vars(txn_lab, "txn-1", "after-kill"), "crash_text": "2"}
    code, killed = run(txn_lab, folder, ["crash", "postfix"], "txn-1", values)
    assert code == 1 and killed["status"] == "failed", killed
    assert "ESMTP after-kill" in sh(txn_lab, "txn-1", "cat /etc/postfix/main.cf")  # the new file is in place...
    assert greeting(address).endswith("ESMTP before-kill")  # ...and Postfix still runs the old one

    code, checked = run(txn_lab, folder, ["crash", "postfix"], "txn-1", values, "check")
    assert code == 2, checked
    assert "reload postfix" in checked["handlers"]
    assert any("would finish interrupted run" in note for note in checked["notes"])

    code, finished = run(txn_lab, folder, ["crash", "postfix"], "txn-1", values)
    assert code == 0, finished
    assert any(note.startswith("finished interrupted run") and "reload postfix (exit 0)" in note for note in finished["notes"])
    assert greeting(address).endswith("ESMTP after-kill")
    code, again = run(txn_lab, folder, ["crash", "postfix"], "txn-1", values)
    assert code == 0 and again["status"] == "ok" and again["round_trips"] == 1


# --- 2. two runs at once -------------------------------------------------------------


def test_two_applies_at_once_never_leave_a_mix(txn_lab: Lab, folder: Path, tmp_path: Path) -> None:
    """Run A changes main.cf and master.cf; run B, 0.8 s later, changes main.cf only (its
    master.cf is the host's as both probe it). Each may win, or be refused; a main.cf from one
    and a master.cf from the other (what both runs returning 0 left before) is a host neither declared."""
    address = txn_lab.host("txn-1").address
    current = ("start", "outstart")
    code, first = run(txn_lab, folder, ["postfix"], "txn-1", postfix_vars(txn_lab, "txn-1", *current))
    assert code == 0, first["errors"]
    for attempt in range(4):
        declared = {"a": (f"a{attempt}", f"outa{attempt}"), "b": (f"b{attempt}", current[1])}
        runs = {}
        for tag, (banner, transport) in declared.items():
            inventory = tmp_path / f"{attempt}-{tag}"
            inventory.mkdir()
            values = postfix_vars(txn_lab, "txn-1", banner, transport)
            (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"txn-1": values}}}))
            (inventory / "site.yml").write_text("- hosts: all\n  roles: [postfix]\n")
            command = ["provision", "apply", "-i", str(inventory), "-i", str(txn_lab.inventory_file), "--limit", "txn-1", "--json"]
            runs[tag] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.8)
        outcomes = {}
        for tag, process in runs.items():
            stdout, stderr = process.communicate(timeout=600)
            outcomes[tag] = (process.returncode, json.loads(stdout)["hosts"]["txn-1"], stderr)
        main, master = sh(txn_lab, "txn-1", "cat /etc/postfix/main.cf"), sh(txn_lab, "txn-1", "cat /etc/postfix/master.cf")
        banner = main.split("smtpd_banner = $myhostname ESMTP ")[1].split()[0]
        transport = next(line.split()[0] for line in master.splitlines() if line.startswith("out"))
        final = (banner, transport)
        assert final in (declared["a"], declared["b"], current), (attempt, final, declared, outcomes)
        for tag, (code, result, _stderr) in outcomes.items():
            if final == declared[tag] and final != current:
                assert code == 0, result
            elif code != 0:
                # Refused, and it says why and that it changed nothing.
                assert result["changed"] == [], result
                assert "busy" in result["errors"][0] or "changed since it was probed" in result["errors"][0], result
        assert greeting(address).endswith(f"ESMTP {banner}")  # the running Postfix matches its files
        current = final


# --- 3. a full destination folder; a rollback that cannot restore everything ----------------


def test_a_full_file_system_fails_before_anything_is_replaced(txn_lab: Lab, folder: Path) -> None:
    code, first = run(txn_lab, folder, ["apache"], "txn-2", apache_vars(txn_lab, "txn-2", 80))
    assert code == 0, first["errors"]
    files = "/etc/apache2/apache2.conf /etc/apache2/ports.conf /etc/apache2/provision/modules.conf /etc/apache2/provision/vhosts.conf"
    before = sh(txn_lab, "txn-2", f"sha256sum {files}")
    sh(
        txn_lab,
        "txn-2",
        "mkdir -p /tmp/provision-saved && cp -a /etc/apache2/provision/. /tmp/provision-saved/ && "
        "mount -t tmpfs -o size=64k tmpfs /etc/apache2/provision && cp -a /tmp/provision-saved/. /etc/apache2/provision/ && "
        "(dd if=/dev/zero of=/etc/apache2/provision/filler bs=4k 2>/dev/null; true)",
    )
    try:
        values = apache_vars(txn_lab, "txn-2", 80, admin="ops@example.net", root="/srv/www2")
        code, result = run(txn_lab, folder, ["apache"], "txn-2", values)
        assert code == 1, result
        assert "before any file was replaced (nothing was changed)" in result["errors"][0], result
        assert "No space left on device" in result["errors"][0]
        assert result["changed"] == []
        assert sh(txn_lab, "txn-2", f"sha256sum {files}") == before
        assert sh(txn_lab, "txn-2", "ls -A /etc/apache2 /etc/apache2/provision | grep -c '^.provision-' || true").strip() == "0"
        state = sh(txn_lab, "txn-2", "ls -A /var/lib/provision; echo --; ls -A /var/lib/provision/staging").split("--")
        assert "journal.json" not in state[0] and "lease.json" not in state[0] and state[1].strip() == ""  # nothing owed, held or staged
    finally:
        sh(txn_lab, "txn-2", "umount /etc/apache2/provision")
    assert http_status(f"http://{txn_lab.host('txn-2').address}/") in (200, 403)  # Apache still serves


def test_a_rollback_restores_what_it_can_and_names_what_it_could_not(txn_lab: Lab, folder: Path) -> None:
    sh(txn_lab, "txn-2", "mkdir -p /mnt/provision-breaker && mount -t tmpfs -o size=1m tmpfs /mnt/provision-breaker")
    try:
        assert run(txn_lab, folder, ["breaker"], "txn-2", {"breaker_text": "1"})[0] == 0
        sh(txn_lab, "txn-2", "touch /run/provision-break")
        code, result = run(txn_lab, folder, ["breaker"], "txn-2", {"breaker_text": "2"})
        assert code == 1, result
        error = result["errors"][0]
        assert "handler 'breaker check' failed" in error
        assert "previous files restored: /etc/provision-breaker/a.conf" in error
        assert (
            "NOT restored: /mnt/provision-breaker/b.conf (Read-only file system; its previous content is in /var/backups/provision/"
            in error
        )
        backup = error.split("its previous content is in ")[1].split(")")[0]
        assert sh(txn_lab, "txn-2", f"cat {backup}") == "b 1\n"
        assert sh(txn_lab, "txn-2", "cat /etc/provision-breaker/a.conf") == "a 1\n"
        assert sh(txn_lab, "txn-2", "cat /mnt/provision-breaker/b.conf") == "b 2\n"
        assert result["changed"] == ["/mnt/provision-breaker/b.conf"]  # what did change, and stayed
    finally:
        sh(txn_lab, "txn-2", "rm -f /run/provision-break; umount /mnt/provision-breaker")


# --- 4. a handler that fails after it returned --------------------------------------------


def test_a_reload_whose_new_listen_cannot_bind_is_rolled_back(txn_lab: Lab, folder: Path) -> None:
    address = txn_lab.host("txn-2").address
    code, first = run(txn_lab, folder, ["apache"], "txn-2", apache_vars(txn_lab, "txn-2", 80))
    assert code == 0, first["errors"]
    taken = socket.create_server((address, 8081))  # something else already listens there
    try:
        code, result = run(txn_lab, folder, ["apache"], "txn-2", apache_vars(txn_lab, "txn-2", 80, 8081))
        assert code == 1, result
        error = result["errors"][0]
        # Apache dies moments after a graceful that returned 0: the settle-time check (or, when Apache
        # is quicker to die, the handler's own check) sees it; either way the files go back.
        caught = ("service apache2 is not running", f"does not answer on {address}:8081", "handler 'apache graceful' failed")
        assert any(reason in error for reason in caught), error
        assert "previous files restored: /etc/apache2/ports.conf" in error
        assert "8081" not in sh(txn_lab, "txn-2", "cat /etc/apache2/ports.conf")
        assert http_status(f"http://{address}/") in (200, 403)
        code, again = run(txn_lab, folder, ["apache"], "txn-2", apache_vars(txn_lab, "txn-2", 80, 8081))
        assert code == 1 and again["status"] == "failed"  # never "ok" while it cannot work
    finally:
        taken.close()
    code, fixed = run(txn_lab, folder, ["apache"], "txn-2", apache_vars(txn_lab, "txn-2", 80, 8081))
    assert code == 0, fixed
    assert http_status(f"http://{address}:8081/") in (200, 403)


# --- 5. locked out ---------------------------------------------------------------------------


def test_denying_root_while_connecting_as_root_is_refused_up_front(txn_lab: Lab, folder: Path) -> None:
    done = provision(txn_lab, folder, ["sshd"], "txn-1", {"sshd_permit_root_login": "no"}, "apply")
    assert done.returncode == 1
    assert "PermitRootLogin no would lock out root, the account provision logs in as on txn-1" in done.stderr
    code, _ = txn_lab.exec("txn-1", ["test", "-e", "/etc/ssh/sshd_config.d/provision.conf"])
    assert code != 0  # nothing was pushed


def test_a_change_that_locks_out_the_login_is_put_back(txn_lab: Lab, folder: Path) -> None:
    try:
        assert run(txn_lab, folder, ["lockout"], "txn-1", {"lockout_deny": False})[0] == 0
        code, result = run(txn_lab, folder, ["lockout"], "txn-1", {"lockout_deny": True})
        assert code == 1, result
        error = result["errors"][0]
        assert "a new SSH login as the run's own user failed" in error
        assert "the previous files were put back" in error and "a new login works again" in error
        assert sh(txn_lab, "txn-1", "cat /etc/ssh/sshd_config.d/00-lockout.conf") == "# nobody denied\n"
        code, checked = run(txn_lab, folder, ["lockout"], "txn-1", {"lockout_deny": False}, "check")
        assert code == 0 and checked["status"] == "ok"  # a later run logs in
    finally:
        txn_lab.exec("txn-1", ["sh", "-c", "rm -f /etc/ssh/sshd_config.d/00-lockout.conf; kill -HUP $(cat /run/sshd.pid)"])


# --- issue 14.10: provision rollback RUN --------------------------------------------------


def test_rollback_puts_a_run_back_like_an_apply(txn_lab: Lab, folder: Path) -> None:
    address = txn_lab.host("txn-2").address
    before = apache_vars(txn_lab, "txn-2", 80, admin="before@example.net")
    assert run(txn_lab, folder, ["apache"], "txn-2", before)[0] == 0
    after = apache_vars(txn_lab, "txn-2", 80, admin="after@example.net")
    code, changed = run(txn_lab, folder, ["apache"], "txn-2", after)
    assert code == 0 and "/etc/apache2/apache2.conf" in changed["changed"], changed
    [note] = [n for n in changed["notes"] if "provision rollback" in n]
    run_id = note.split("provision rollback ")[1].split()[0]

    # The inventory still says "after": the rollback puts the host back, check then says it drifted.
    arguments = ["provision", "rollback", run_id, "-i", str(folder), "-i", str(txn_lab.inventory_file), "--limit", "txn-2", "--json"]
    rolled = subprocess.run(arguments, capture_output=True, text=True, check=False, timeout=600)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    result = json.loads(rolled.stdout)["hosts"]["txn-2"]
    assert result["changed"] == ["/etc/apache2/apache2.conf"] and result["handlers"] == ["apache graceful"], result
    assert "ServerAdmin before@example.net" in sh(txn_lab, "txn-2", "cat /etc/apache2/apache2.conf")
    assert http_status(f"http://{address}/") in (200, 403)
    code, drift = run(txn_lab, folder, ["apache"], "txn-2", after, "check")
    assert code == 2 and drift["changed"] == ["/etc/apache2/apache2.conf"], drift
