"""The agent: a stdlib-only script that the controller sends to a host.

It is never imported by the controller; its source travels on the standard
input of one ``python3`` command per round trip, followed by one JSON
request. It answers with one JSON document on standard output. One
operation per round trip:

- ``probe``: the actual state of the declared files, directories, packages
  and services (and, for a diff, the current content of changed files);
- ``stage``: install missing packages, write the new files into a private
  staging folder and run every validator against the staged copies;
- ``commit``: back up the originals, move the staged files into place
  atomically, run handlers, ensure services; restore the originals if a
  handler fails;
- ``mail`` and ``report``: Postfix queue commands, and what ``provision
  report`` reads (each instance's transports, queues, certificates).

Python 3.7 compatible (the oldest python3 a supported Debian ships).
"""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

STATE_DIR = "var/lib/provision"
BACKUP_DIR = "var/backups/provision"
OUTPUT_LIMIT = 4000


class Failure(Exception):
    pass


def host_path(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def name_of_uid(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def name_of_gid(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def uid_of(owner: str) -> int:
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        if owner.isdigit():
            return int(owner)
        raise Failure("no such user on the host: %s" % owner) from None


def gid_of(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise Failure("no such group on the host: %s" % group) from None


def run(command: str, timeout: int = 600) -> Dict[str, Any]:
    started = time.time()
    try:
        done = subprocess.run(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        output = done.stdout.decode("utf-8", "replace")
        code = done.returncode
    except subprocess.TimeoutExpired:
        output, code = "timed out after %ss" % timeout, 124
    return {"command": command, "exit": code, "output": output[-OUTPUT_LIMIT:], "seconds": round(time.time() - started, 3)}


# --- probe ---------------------------------------------------------------


def stat_entry(path: str) -> Dict[str, Any]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    except NotADirectoryError:
        return {"exists": False}
    return {
        "exists": True,
        "is_file": stat.S_ISREG(info.st_mode),
        "is_dir": stat.S_ISDIR(info.st_mode),
        "mode": stat.S_IMODE(info.st_mode),
        "owner": name_of_uid(info.st_uid),
        "group": name_of_gid(info.st_gid),
    }


def probe_packages(names: List[str]) -> Dict[str, Optional[str]]:
    found = dict.fromkeys(names)  # type: Dict[str, Optional[str]]
    if not names or shutil.which("dpkg-query") is None:
        return found
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].endswith(" installed"):
            found[parts[0].split(":")[0]] = parts[2]
    return found


def has_systemd() -> bool:
    return os.path.isdir("/run/systemd/system")


def probe_service(name: str) -> Dict[str, Any]:
    if has_systemd():
        active = run("systemctl is-active --quiet %s" % shlex.quote(name))["exit"] == 0
        enabled_run = run("systemctl is-enabled %s" % shlex.quote(name))
        enabled = enabled_run["output"].strip() == "enabled"
        return {"active": active, "enabled": enabled}
    script = "/etc/init.d/" + name
    if not os.path.exists(script):
        return {"active": False, "enabled": None}
    active = run("%s status" % shlex.quote(script))["exit"] == 0
    links = [f for f in os.listdir("/etc/rc2.d")] if os.path.isdir("/etc/rc2.d") else []
    enabled = any(f.startswith("S") and f[3:] == name for f in links)
    return {"active": active, "enabled": enabled}


def op_probe(request: Dict[str, Any]) -> Dict[str, Any]:
    root = request["root"]
    limit = request.get("max_content", 262144)
    files = {}
    for entry in request.get("files", []):
        where = host_path(root, entry["path"])
        fact = stat_entry(where)
        if fact["exists"] and fact["is_file"]:
            try:
                fact["sha256"] = file_sha256(where)
            except OSError as exc:
                fact["error"] = str(exc)
            wanted = entry.get("always_content") or (entry.get("want_content") and fact.get("sha256") != entry.get("sha256"))
            if wanted and os.path.getsize(where) <= limit:
                with open(where, "rb") as handle:
                    fact["content_b64"] = base64.b64encode(handle.read()).decode()
        files[entry["path"]] = fact
    directories = {path: stat_entry(host_path(root, path)) for path in request.get("directories", [])}
    extra = {}  # type: Dict[str, Optional[str]]
    for path in request.get("extra_files", []):
        where = host_path(root, path)
        extra[path] = None
        if os.path.isfile(where) and os.path.getsize(where) <= limit:
            with open(where, "rb") as handle:
                extra[path] = base64.b64encode(handle.read()).decode()
    public_keys = {}  # type: Dict[str, Optional[str]]
    for path in request.get("public_keys", []):
        where = host_path(root, path)
        # The private key never leaves the host: only its public half does.
        outcome = run("openssl pkey -in %s -pubout" % shlex.quote(where)) if os.path.isfile(where) else None
        public_keys[path] = str(outcome["output"]) if outcome and outcome["exit"] == 0 else None
    return {
        "ok": True,
        "files": files,
        "directories": directories,
        "packages": probe_packages(request.get("packages", [])),
        "services": {name: probe_service(name) for name in request.get("services", [])},
        "facts": dict(facts(), **role_facts(request.get("facts", {}))),
        "extra_files": extra,
        "public_keys": public_keys,
    }


def role_facts(commands: Dict[str, str]) -> Dict[str, str]:
    """Each role fact's output, or "" when its command fails (say, not installed yet)."""
    answers = {}
    for name, command in commands.items():
        outcome = run(command, timeout=60)
        answers[name] = outcome["output"].strip() if outcome["exit"] == 0 else ""
    return answers


def facts() -> Dict[str, str]:
    result = {"hostname": os.uname().nodename, "python": sys.version.split()[0]}
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key in ("ID", "VERSION_ID", "VERSION_CODENAME"):
                    result["os_" + key.lower()] = value.strip('"')
    except OSError:
        pass
    return result


# --- stage ---------------------------------------------------------------


def staging_root(root: str, run_id: str) -> str:
    return host_path(root, "%s/staging/%s" % (STATE_DIR, run_id))


def install_packages(names: List[str]) -> List[Dict[str, Any]]:
    if not names:
        return []
    env_prefix = "DEBIAN_FRONTEND=noninteractive "
    install = env_prefix + "apt-get install -y -q --no-install-recommends " + " ".join(shlex.quote(n) for n in names)
    steps = []
    lists = "/var/lib/apt/lists"
    stale = not os.path.isdir(lists) or not [f for f in os.listdir(lists) if f.endswith("Packages")]
    if stale:
        steps.append(run(env_prefix + "apt-get update -q", timeout=900))
    # A package must not start its daemon with the package's own config (Postfix
    # on all interfaces, say): policy-rc.d holds services back until the commit
    # has put our config in place and the handlers start them.
    policy = "/usr/sbin/policy-rc.d"
    own_policy = not os.path.exists(policy)
    if own_policy:
        with open(policy, "w") as handle:
            handle.write("#!/bin/sh\n# provision: no service starts while packages install\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        attempt = run(install, timeout=1800)
        steps.append(attempt)
        if attempt["exit"] != 0 and not stale:
            steps.append(run(env_prefix + "apt-get update -q", timeout=900))
            steps.append(run(install, timeout=1800))
    finally:
        if own_policy:
            os.unlink(policy)
    if steps[-1]["exit"] != 0:
        raise Failure("installing %s failed:\n%s" % (" ".join(names), steps[-1]["output"]))
    return steps


def write_new(path: str, data: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def make_csr(root: str, entry: Dict[str, Any]) -> str:
    """A key made here (kept if it exists) and its signing request, returned."""
    key = host_path(root, entry["key_path"])
    subject = "/CN=" + entry["common_name"].replace("/", "\\/")
    san = "subjectAltName=" + ",".join("DNS:" + name for name in entry["names"])
    if os.path.exists(key):
        command = "openssl req -new -key %s -subj %s -addext %s" % (shlex.quote(key), shlex.quote(subject), shlex.quote(san))
    else:
        os.makedirs(os.path.dirname(key), exist_ok=True)
        if entry.get("key_type") == "ecdsa":
            curve = {256: "P-256", 384: "P-384", 521: "P-521"}.get(int(entry.get("key_size") or 256), "P-256")
            new_key = "-newkey ec -pkeyopt ec_paramgen_curve:%s" % curve
        else:
            new_key = "-newkey rsa:%d" % int(entry.get("key_size") or 2048)
        command = "umask 077; openssl req -new %s -nodes -keyout %s -subj %s -addext %s" % (
            new_key,
            shlex.quote(key),
            shlex.quote(subject),
            shlex.quote(san),
        )
    outcome = run(command)
    if outcome["exit"] != 0 or "BEGIN CERTIFICATE REQUEST" not in outcome["output"]:
        raise Failure("making the key and CSR for %s failed:\n%s" % (entry["name"], outcome["output"]))
    os.chown(key, uid_of(entry.get("owner") or "root"), gid_of(entry.get("group") or "root"))
    os.chmod(key, entry["key_mode"])
    text = str(outcome["output"])
    return text[text.index("-----BEGIN CERTIFICATE REQUEST") :]


def op_stage(request: Dict[str, Any]) -> Dict[str, Any]:
    root, run_id = request["root"], request["run_id"]
    result = {"ok": True, "installed": [], "validations": []}  # type: Dict[str, Any]
    result["installed"] = [s["command"] for s in install_packages(request.get("packages", []))]
    result["csrs"] = {entry["name"]: make_csr(root, entry) for entry in request.get("csr", [])}
    staging = staging_root(root, run_id)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging, mode=0o700)
    os.chmod(host_path(root, STATE_DIR + "/staging"), 0o700)
    staged = set()
    for entry in request.get("files", []):
        write_new(host_path(staging, entry["path"]), base64.b64decode(entry["content_b64"]), entry["mode"])
        staged.add(entry["path"])
    checks = []
    for entry in request.get("files", []):
        if entry.get("validate"):
            target = shlex.quote(host_path(staging, entry["path"]))
            command = entry["validate"].replace("%s", target)
            checks.append(dict(run(command), what="validate %s" % entry["path"]))
    for validator in request.get("validators", []):
        for path in validator["files"]:
            live = host_path(root, path)
            if path not in staged and os.path.isfile(live):
                os.makedirs(os.path.dirname(host_path(staging, path)), mode=0o700, exist_ok=True)
                shutil.copy2(live, host_path(staging, path))
        command = validator["command"].replace("{staging}", shlex.quote(staging))
        checks.append(dict(run(command), what=validator.get("description") or "validator of role %s" % validator["role"]))
    result["validations"] = checks
    if any(check["exit"] != 0 for check in checks):
        shutil.rmtree(staging, ignore_errors=True)
        result["ok"] = False
        failed = next(c for c in checks if c["exit"] != 0)
        result["error"] = "validation failed (%s): %s\n%s" % (failed["what"], failed["command"], failed["output"].strip())
    return result


# --- commit --------------------------------------------------------------


def fsync_dir(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_copy(source: str, dest: str, mode: int, uid: int, gid: int) -> None:
    """Write ``dest`` through a temp file in its own folder, then rename."""
    folder = os.path.dirname(dest)
    descriptor, temp = tempfile.mkstemp(prefix=".provision-", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
            out.flush()
            os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.rename(temp, dest)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_dir(folder)


def ensure_parent(path: str) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o755)


class Transaction:
    """Files committed so far, and how to put each one back."""

    def __init__(self, root: str, run_id: str) -> None:
        self.root = root
        self.backup_root = host_path(root, "%s/%s" % (BACKUP_DIR, run_id))
        self.undo = []  # type: List[Dict[str, Any]]

    def backup(self, path: str) -> Optional[str]:
        live = host_path(self.root, path)
        if not os.path.lexists(live):
            return None
        copy = host_path(self.backup_root, path)
        os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
        os.chmod(host_path(self.root, BACKUP_DIR), 0o700)
        shutil.copy2(live, copy)
        info = os.lstat(live)
        os.chown(copy, info.st_uid, info.st_gid)
        return copy

    def write(self, entry: Dict[str, Any], staging: str) -> None:
        live = host_path(self.root, entry["path"])
        uid, gid = uid_of(entry["owner"]), gid_of(entry["group"])
        if entry["content_changed"]:
            staged = host_path(staging, entry["path"])
            if file_sha256(staged) != entry["sha256"]:
                raise Failure("staged copy of %s does not match what was validated" % entry["path"])
            ensure_parent(live)
            self.undo.append({"path": entry["path"], "backup": self.backup(entry["path"])})
            atomic_copy(staged, live, entry["mode"], uid, gid)
        else:
            info = os.lstat(live)
            self.undo.append({"path": entry["path"], "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid})
            os.chown(live, uid, gid)
            os.chmod(live, entry["mode"])

    def rollback(self) -> List[str]:
        restored = []
        for step in reversed(self.undo):
            live = host_path(self.root, step["path"])
            if "backup" not in step:
                os.chown(live, step["uid"], step["gid"])
                os.chmod(live, step["mode"])
            elif step["backup"] is None:
                if os.path.lexists(live):
                    os.unlink(live)
            else:
                info = os.lstat(step["backup"])
                atomic_copy(step["backup"], live, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
            restored.append(step["path"])
        self.undo = []
        return restored


def run_handler(handler: Dict[str, Any]) -> Dict[str, Any]:
    outcome = dict(run(handler["command"]), name=handler["name"])
    if outcome["exit"] == 0 and handler.get("check"):
        check = run(handler["check"])
        if check["exit"] != 0:
            outcome["exit"] = check["exit"]
            outcome["output"] += "\ncheck failed: %s\n%s" % (handler["check"], check["output"])
    return outcome


def service_command(name: str, action: str) -> str:
    if has_systemd():
        return "systemctl %s %s" % (action, shlex.quote(name))
    if action in ("enable", "disable"):
        return "update-rc.d %s %s" % (shlex.quote(name), "defaults" if action == "enable" else "disable")
    return "/etc/init.d/%s %s" % (shlex.quote(name), action)


def op_commit(request: Dict[str, Any]) -> Dict[str, Any]:
    root, run_id = request["root"], request["run_id"]
    staging = staging_root(root, run_id)
    result = {"ok": True, "handlers": [], "services": [], "restored": []}  # type: Dict[str, Any]
    transaction = Transaction(root, run_id)
    try:
        for entry in request.get("directories", []):
            path = host_path(root, entry["path"])
            if not os.path.isdir(path):
                os.makedirs(path, mode=entry["mode"] if entry["mode"] is not None else 0o755)
            if entry["mode"] is None:
                continue  # only made sure it exists
            os.chown(path, uid_of(entry["owner"]), gid_of(entry["group"]))
            os.chmod(path, entry["mode"])
        for entry in request.get("files", []):
            transaction.write(entry, staging)
    except (OSError, Failure) as exc:
        result["restored"] = transaction.rollback()
        result.update(ok=False, error="commit failed, previous files restored: %s" % exc)
        return result
    ran = []  # type: List[Dict[str, Any]]
    for handler in request.get("handlers", []):
        outcome = run_handler(handler)
        result["handlers"].append(outcome)
        ran.append(handler)
        if outcome["exit"] != 0:
            result["restored"] = transaction.rollback()
            result["recovery"] = [run_handler(h) for h in ran]
            result.update(
                ok=False,
                error="handler %r failed (exit %s), previous files restored:\n%s"
                % (handler["name"], outcome["exit"], outcome["output"].strip()),
            )
            return result
    for service in request.get("services", []):
        # A handler may have started or stopped it since the probe.
        active = probe_service(service["name"])["active"]
        for action in ("enable", "disable", "start", "stop"):
            if (action == "start" and active) or (action == "stop" and not active):
                continue
            if service.get(action):
                outcome = run(service_command(service["name"], action))
                result["services"].append(outcome)
                if outcome["exit"] != 0:
                    result.update(ok=False, error="%s %s failed:\n%s" % (action, service["name"], outcome["output"].strip()))
                    return result
    shutil.rmtree(staging, ignore_errors=True)
    prune_backups(root, request.get("keep_backups", 20))
    return result


def prune_backups(root: str, keep: int) -> None:
    folder = host_path(root, BACKUP_DIR)
    if not os.path.isdir(folder):
        return
    runs = sorted(os.listdir(folder))
    for name in runs[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


# --- mail operations (provision mail ...) ------------------------------------


def postfix_instances() -> List[Dict[str, str]]:
    """Every Postfix instance on the host, primary first."""
    if shutil.which("postconf") is None:
        return []
    listing = run("postmulti -l -a") if shutil.which("postmulti") else {"exit": 1, "output": ""}  # type: Dict[str, Any]
    instances = []
    if listing["exit"] == 0:
        for line in listing["output"].splitlines():
            parts = line.split()
            if len(parts) == 4:
                instances.append({"name": parts[0], "group": parts[1], "enabled": parts[2], "config_directory": parts[3]})
    return instances or [{"name": "-", "group": "-", "enabled": "y", "config_directory": "/etc/postfix"}]


# provision's own MTA (role python_mta) where no Postfix is installed.
PROVISION_MTA = "/opt/provision-mta/bin/provision-mta"


def mail_instances() -> List[Dict[str, str]]:
    """Postfix's instances, or provision-mta as the one instance of a host without Postfix."""
    instances = postfix_instances()
    if not instances and os.path.exists(PROVISION_MTA):
        instances = [{"name": "provision-mta", "group": "-", "enabled": "y", "config_directory": "/etc/postfix", "mta": "provision-mta"}]
    return instances


def queue_command(instance: Dict[str, str], verb: str) -> str:
    """The command that does ``verb`` (json, flush, requeue, delete, hold, release) to this instance's queue."""
    directory = shlex.quote(instance["config_directory"])
    if instance.get("mta") == "provision-mta":
        return "%s -c %s queue %s" % (PROVISION_MTA, directory, verb if verb in ("json", "flush", "requeue") else verb + " ALL")
    postfix = {
        "json": "postqueue -c %s -j",
        "flush": "postqueue -c %s -f",
        "requeue": "postsuper -c %s -r ALL",
        "delete": "postsuper -c %s -d ALL",
        "hold": "postsuper -c %s -h ALL",
        "release": "postsuper -c %s -H ALL",
    }
    return postfix[verb] % directory


def queue_summary(instance: Dict[str, str]) -> Dict[str, Any]:
    listing = run(queue_command(instance, "json"))
    if listing["exit"] != 0:
        return {"error": listing["output"].strip()}
    count, size, oldest = 0, 0, None  # type: int, int, Optional[int]
    by_queue = {}  # type: Dict[str, int]
    domains = {}  # type: Dict[str, int]
    for line in listing["output"].splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        count += 1
        size += int(message.get("message_size", 0))
        arrival = message.get("arrival_time")
        if arrival is not None and (oldest is None or arrival < oldest):
            oldest = int(arrival)
        queue = message.get("queue_name", "?")
        by_queue[queue] = by_queue.get(queue, 0) + 1
        for recipient in message.get("recipients", []):
            domain = recipient.get("address", "").rpartition("@")[2] or "(local)"
            domains[domain] = domains.get(domain, 0) + 1
    top = sorted(domains.items(), key=lambda item: (-item[1], item[0]))[:5]
    return {"count": count, "bytes": size, "oldest": oldest, "queues": by_queue, "top_destinations": top, "now": int(time.time())}


def op_mail(request: Dict[str, Any]) -> Dict[str, Any]:
    action, wanted = request["action"], request.get("instance")
    instances = [i for i in mail_instances() if wanted in (None, i["name"], i["config_directory"])]
    if not instances:
        raise Failure("no Postfix instance and no provision-mta here" + (" named %s" % wanted if wanted else ""))
    results = []
    for instance in instances:
        directory = instance["config_directory"]
        entry = dict(instance)  # type: Dict[str, Any]
        if action == "queue":
            entry["queue"] = queue_summary(instance)
        elif action == "check" and instance.get("mta") == "provision-mta":
            entry["check"] = run("%s -c %s check" % (PROVISION_MTA, shlex.quote(directory)))
        elif action == "check":
            entry["check"] = run("postfix -c %s check" % shlex.quote(directory))
            entry["map_types"] = run("postconf -c %s -m" % shlex.quote(directory))["output"].split()
        else:
            entry["result"] = run(queue_command(instance, action))
        results.append(entry)
    return {"ok": True, "instances": results}


# What the report reads: Postfix's own view of its transports (so folded
# lines, -o { } and $name are understood as Postfix does) and public PEM.
REPORT_MAIN = "myhostname smtp_helo_name smtp_bind_address smtp_bind_address6"


def read_certificate(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(256 * 1024)
    except OSError:
        return None
    text = data.decode("ascii", "replace")
    # Only the certificate blocks ever leave the host, whatever else the file holds.
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return "\n".join(blocks) + "\n" if blocks else ""


def op_report(request: Dict[str, Any]) -> Dict[str, Any]:
    instances = []
    for instance in postfix_instances():
        directory = shlex.quote(instance["config_directory"])
        entry = {"name": "postfix" if instance["name"] == "-" else instance["name"], "config_directory": instance["config_directory"]}  # type: Dict[str, Any]
        for key, command in (
            ("master", "postconf -c %s -M"),
            ("overrides", "postconf -c %s -Px"),
            ("main", "postconf -c %s -x " + REPORT_MAIN),
        ):
            answer = run(command % directory)
            if answer["exit"] != 0:
                entry["error"] = answer["output"].strip()
            entry[key] = answer["output"]
        entry["queue"] = queue_summary(instance)
        instances.append(entry)
    certificates = {path: read_certificate(path) for path in request.get("certificates", [])}
    return {"ok": True, "instances": instances, "certificates": certificates}


# What onboarding's test messages became, read from Postfix's own log:
# cleanup logs the Message-ID with the queue ID, the smtp client (under its
# transport's syslog_name) logs the delivery status of that queue ID.
MESSAGE_ID_LINE = re.compile(r"\b([0-9A-Za-z]{6,}): message-id=<?([^>\s]+)>?")
DELIVERY_LINE = re.compile(r"(postfix[^\[:\s]*)\[\d+\]: ([0-9A-Za-z]{6,}): to=<[^>]*>,.*?relay=([^,]+),.*? status=(\w+) \((.*)\)$")
LOG_TAIL = 4 * 1024 * 1024


def mail_log(directory: str) -> str:
    configured = run("postconf -c %s -h maillog_file" % shlex.quote(directory))["output"].strip()
    return configured if configured and configured.startswith("/") else "/var/log/mail.log"


def read_tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def op_mail_test(request: Dict[str, Any]) -> Dict[str, Any]:
    directory = request.get("config_directory", "/etc/postfix")
    for message in request.get("submit", []):
        done = subprocess.run(
            ["/usr/sbin/sendmail", "-C", directory, "-f", message["sender"], "-i", "--", message["recipient"]],
            input=message["text"].encode("utf-8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        if done.returncode != 0:
            raise Failure("sendmail refused the test message: %s" % done.stdout.decode("utf-8", "replace").strip())
    log = mail_log(directory)
    text = read_tail(log)
    wanted = set(request.get("message_ids", []))
    queue_ids = {}  # type: Dict[str, str]
    for found_id in MESSAGE_ID_LINE.finditer(text):
        if found_id.group(2) in wanted:
            queue_ids[found_id.group(1)] = found_id.group(2)
    found = {}  # type: Dict[str, Dict[str, str]]
    for line in text.splitlines():
        delivery = DELIVERY_LINE.search(line)
        if delivery and delivery.group(2) in queue_ids:
            program, queue_id, relay, status, detail = delivery.groups()
            found[queue_ids[queue_id]] = {"queue_id": queue_id, "program": program, "relay": relay, "status": status, "detail": detail}
    for queue_id, message_id in queue_ids.items():
        found.setdefault(message_id, {"queue_id": queue_id, "status": "queued"})
    return {"ok": True, "log": log, "log_found": bool(text), "messages": found}


OPERATIONS = {
    "probe": op_probe,
    "stage": op_stage,
    "commit": op_commit,
    "mail": op_mail,
    "report": op_report,
    "mail_test": op_mail_test,
}


def handle(request: Dict[str, Any]) -> Dict[str, Any]:
    try:
        return OPERATIONS[request["op"]](request)
    except Failure as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": "agent error: %s: %s" % (type(exc).__name__, exc)}


def main() -> None:
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except ValueError as exc:
        request = {"op": "invalid", "error": str(exc)}
    answer = handle(request) if request.get("op") in OPERATIONS else {"ok": False, "error": "bad request"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
