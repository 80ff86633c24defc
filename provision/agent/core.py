"""The agent's core: probe and stage, the host's lock, stdlib only.

The controller never runs this module itself (only the test fake does, in
process); its source travels on the standard input of one ``python3``
command per round trip (see ``provision.engine.agent_call``), followed by
one JSON request whose shape ``provision.agent.protocol`` declares. It
answers with one JSON document on standard output. One operation per round
trip:

- ``probe``: the actual state of the declared files, directories, packages
  and services (and, for a diff, the current content of changed files); an
  interrupted run's journal, another run holding the host, leftovers;
- ``stage``: take the host's lock, install missing packages, write the new
  files into a private staging folder and run every validator against the
  staged copies (with ``check``: only validate, then remove them);
- ``backup``: what a past run replaced, from its backup folder;
- ``commit`` and ``revert`` (``provision.agent.commit``, sent beside this
  module): the transaction itself;
- the operations of ``provision.agent.mail`` (queues, what the report
  reads), when the controller sent that module too.

Compatible with the oldest python3 a supported Debian ships (3.9).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

if TYPE_CHECKING:  # the protocol's types only: the module itself never travels to a host
    from provision.agent.protocol import (
        Answer,
        BackupAnswer,
        BackupEntry,
        BackupRequest,
        CommandOutcome,
        CsrSpec,
        FileStat,
        Holder,
        JournalInfo,
        KeySpec,
        LeaseInfo,
        PackageVersions,
        ProbeAnswer,
        ProbeRequest,
        ServiceState,
        StageAnswer,
        StageRequest,
        Validation,
    )

STATE_DIR = "var/lib/provision"
BACKUP_DIR = "var/backups/provision"
OUTPUT_LIMIT = 4000
TEMP_PREFIX = ".provision-"
"""Temporary files beside a destination start with this (new content, the previous file kept for a rollback)."""
MANIFEST = ".provision-manifest.json"
"""In a run's backup folder: what the run replaced, so that it can be put back."""


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


def regular_file_sha(path: str) -> Optional[str]:
    """The file's sha256; None when it does not exist; a marker for what is not a regular file."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return file_sha256(path)


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


def run(command: str, timeout: int = 600) -> CommandOutcome:
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


def fsync_dir(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durably(path: str, data: bytes, mode: int = 0o600) -> None:
    """``path`` replaced by ``data``, on disk (file and folder fsync'd) when this returns."""
    folder = os.path.dirname(path)
    temp = "%s.%d.tmp" % (path, os.getpid())
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_dir(folder)


def remove_durably(path: str) -> None:
    if os.path.lexists(path):
        os.unlink(path)
        fsync_dir(os.path.dirname(path))


def private_dir(path: str) -> str:
    """``path`` made (0700, as its parents under the state folder) if missing."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
    return path


# --- the host's lock -------------------------------------------------------
# Stage and commit of one run hold the host: two runs at once would leave a
# mix of their files. The lock has two parts: an flock held by whichever
# agent process is working (released by the kernel when it dies, so a
# killed run never blocks the next), and a lease naming the run, which
# keeps the host between that run's stage and its commit (and lapses after
# LEASE_SECONDS if the run never comes back).

LEASE_SECONDS = 120.0
LOCK_WAIT = 2.0
"""A probe takes the lock for an instant: a run that finds it taken tries again this long before saying busy."""


def lock_path(root: str) -> str:
    return host_path(root, STATE_DIR + "/lock")


def lease_path(root: str) -> str:
    return host_path(root, STATE_DIR + "/lease.json")


def read_json(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None


def describe_holder(lease: LeaseInfo) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.get("since", 0)))
    text = "run %s (%s by %s@%s, pid %s) since %s" % (
        lease.get("run_id"),
        lease.get("command"),
        lease.get("user"),
        lease.get("controller"),
        lease.get("pid"),
        since,
    )
    if lease.get("phase") == "staged":
        until = time.strftime("%H:%M:%S", time.localtime(lease.get("expires", 0)))
        text += ", between its stage and its commit (if that run was stopped, the host is free again at %s)" % until
    else:
        text += ", %s now" % lease.get("phase")
    return text


class HostLock:
    """The host held for one run, for one operation; ``release`` ends the operation."""

    def __init__(self, root: str, holder: Holder) -> None:
        self.root = root
        self.holder = holder
        self.descriptor: Optional[int] = None

    def acquire(self, phase: str) -> None:
        private_dir(host_path(self.root, STATE_DIR))
        descriptor = os.open(lock_path(self.root), os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.time() + LOCK_WAIT
        while not try_flock(descriptor, fcntl.LOCK_EX):
            if time.time() >= deadline:
                os.close(descriptor)
                holder: LeaseInfo = read_json(lease_path(self.root)) or {"phase": "working"}  # type: ignore[assignment]
                raise Failure("the host is busy: %s" % describe_holder(holder))
            time.sleep(0.05)
        lease = read_json(lease_path(self.root))
        if lease and lease.get("run_id") != self.holder["run_id"] and lease_live(lease, locked_by_us=True):
            os.close(descriptor)
            raise Failure("the host is busy: %s" % describe_holder(lease))
        self.descriptor = descriptor
        self.set_phase(phase)

    def set_phase(self, phase: str) -> None:
        now = time.time()
        lease: LeaseInfo = dict(self.holder, phase=phase, since=now, expires=now + LEASE_SECONDS)  # type: ignore[assignment]
        write_durably(lease_path(self.root), json.dumps(lease).encode())

    def release(self, keep_lease: bool) -> None:
        """End the operation; ``keep_lease``: the run comes back (stage, then commit)."""
        if self.descriptor is None:
            return
        try:
            if keep_lease:
                self.set_phase("staged")
            else:
                remove_durably(lease_path(self.root))
        finally:
            os.close(self.descriptor)
            self.descriptor = None


def try_flock(descriptor: int, kind: int) -> bool:
    try:
        fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        os.close(descriptor)
        raise
    return True


def lease_live(lease: LeaseInfo, locked_by_us: bool) -> bool:
    """Whether ``lease`` still holds the host.

    While an operation runs, its process holds the flock; when we hold the
    flock ourselves, a lease in 'staging' or 'committing' is one whose
    process died. A 'staged' lease lives until it expires.
    """
    if lease.get("phase") == "staged":
        return bool(time.time() < lease.get("expires", 0))
    return not locked_by_us


def current_lease(root: str) -> Optional[LeaseInfo]:
    """The lease of a run that holds the host now, for the probe (which takes no lock)."""
    lease: Optional[LeaseInfo] = read_json(lease_path(root))
    if not lease:
        return None
    if lease.get("phase") == "staged":
        return lease if lease_live(lease, locked_by_us=True) else None
    # An operation's lease: live only while some process holds the flock.
    try:
        descriptor = os.open(lock_path(root), os.O_RDONLY)
    except OSError:
        return None
    try:
        free = try_flock(descriptor, fcntl.LOCK_SH)
    except OSError:
        return None
    os.close(descriptor)  # closing releases the shared lock at once
    return None if free else lease


# --- journal and leftovers --------------------------------------------------


def journal_path(root: str) -> str:
    return host_path(root, STATE_DIR + "/journal.json")


def pending_journal(root: str) -> Optional[JournalInfo]:
    journal = read_json(journal_path(root))
    if not journal:
        return None
    return {
        "run_id": journal.get("run_id", "?"),
        "state": journal.get("state", "?"),
        "handlers": [h["name"] for h in journal.get("handlers", [])],
        "started": journal.get("started", 0),
        "holder": journal.get("holder", {}),
    }


def staging_parent(root: str) -> str:
    return host_path(root, STATE_DIR + "/staging")


def stale_staging(root: str, own_run: Optional[str]) -> List[str]:
    folder = staging_parent(root)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name != own_run]


def stray_temps(root: str, paths: List[str]) -> List[str]:
    """Temporary files (``.provision-*``) in the folders of ``paths``: an interrupted run's."""
    found: List[str] = []
    for folder in sorted({os.path.dirname(host_path(root, path)) for path in paths}):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [os.path.join(folder, name) for name in sorted(names) if name.startswith(TEMP_PREFIX)]
    return found


def remove_leftovers(root: str, own_run: Optional[str], paths: List[str]) -> List[str]:
    """Staging folders and temporary files of interrupted runs; only called under the lock."""
    removed = []
    for folder in stale_staging(root, own_run):
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    for temp in stray_temps(root, paths):
        try:
            os.unlink(temp)
            removed.append(temp)
        except OSError:
            pass
    return removed


# --- probe ---------------------------------------------------------------


def stat_entry(path: str) -> FileStat:
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
    found: Dict[str, Optional[str]] = dict.fromkeys(names)
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


def probe_versions(names: List[str], candidates: List[str]) -> Dict[str, PackageVersions]:
    """Each package's installed version; for one of ``candidates`` not
    installed, the version apt would install (from its lists, offline), so
    that roles can choose settings for the version they are about to install."""
    installed = probe_packages(names)
    missing = [name for name in candidates if name in installed and installed[name] is None]
    found: Dict[str, Optional[str]] = {}
    if missing and shutil.which("apt-cache") is not None:
        done = subprocess.run(["apt-cache", "policy", *missing], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        package = None
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                package = line[:-1].split(":")[0]
            elif package is not None and line.strip().startswith("Candidate:"):
                value = line.split(":", 1)[1].strip()
                found[package] = None if value == "(none)" else value
    return {name: {"installed": installed.get(name), "candidate": found.get(name)} for name in names}


def has_systemd() -> bool:
    return os.path.isdir("/run/systemd/system")


def probe_service(name: str) -> ServiceState:
    if has_systemd():
        active = run("systemctl is-active --quiet %s" % shlex.quote(name))["exit"] == 0
        enabled_run = run("systemctl is-enabled %s" % shlex.quote(name))
        enabled = enabled_run["output"].strip() == "enabled"
        return {"active": active, "enabled": enabled}
    script = "/etc/init.d/" + name
    if not os.path.exists(script):
        # Not installed yet (the converge writes its script): not enabled, as
        # systemctl says of a unit it does not know, so the commit enables it
        # once the script is in place and the next run finds nothing to do.
        return {"active": False, "enabled": False}
    active = run("%s status" % shlex.quote(script))["exit"] == 0
    links = [f for f in os.listdir("/etc/rc2.d")] if os.path.isdir("/etc/rc2.d") else []
    enabled = any(f.startswith("S") and f[3:] == name for f in links)
    return {"active": active, "enabled": enabled}


MAX_CONTENT = 262144
"""The most bytes of a file's current content the probe sends back (for a diff or a merge)."""


def public_half(path: str) -> Optional[str]:
    """The public half (PEM) of the private key at ``path``: the private key never leaves the host."""
    if not os.path.isfile(path):
        return None
    outcome = run("openssl pkey -in %s -pubout" % shlex.quote(path))
    return outcome["output"] if outcome["exit"] == 0 else None


def op_probe(request: ProbeRequest) -> ProbeAnswer:
    root = request["root"]
    limit = MAX_CONTENT
    files: Dict[str, FileStat] = {}
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
    extra: Dict[str, Optional[str]] = {}
    for path in request.get("extra_files", []):
        where = host_path(root, path)
        extra[path] = None
        if os.path.isfile(where) and os.path.getsize(where) <= limit:
            with open(where, "rb") as handle:
                extra[path] = base64.b64encode(handle.read()).decode()
    public_keys = {path: public_half(host_path(root, path)) for path in request.get("public_keys", [])}
    busy = current_lease(root)
    journal = pending_journal(root) if busy is None else None
    leftovers: List[str] = []
    if busy is None:
        leftovers = stale_staging(root, None) + stray_temps(root, [entry["path"] for entry in request.get("files", [])])
    return {
        "ok": True,
        "files": files,
        "directories": directories,
        "packages": probe_packages(request.get("packages", [])),
        "services": {name: probe_service(name) for name in request.get("services", [])},
        "facts": dict(facts(), **role_facts(request.get("facts", {}))),
        "versions": probe_versions(request.get("versions", []), request.get("candidates", [])),
        "extra_files": extra,
        "public_keys": public_keys,
        "journal": journal,
        "busy": busy,
        "leftovers": leftovers,
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
    try:
        with open("/etc/debian_version") as handle:
            result["os_debian_version"] = handle.read().strip()
    except OSError:
        pass
    return result


# --- stage ---------------------------------------------------------------


def staging_root(root: str, run_id: str) -> str:
    return host_path(root, "%s/staging/%s" % (STATE_DIR, run_id))


def check_root(root: str, run_id: str) -> str:
    """A drift check's staging: apart from runs' staging, which a run's cleanup removes."""
    return host_path(root, "%s/check/%s" % (STATE_DIR, run_id))


def install_packages(names: List[str]) -> List[CommandOutcome]:
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


def make_csr(root: str, entry: CsrSpec) -> str:
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
    text = outcome["output"]
    return text[text.index("-----BEGIN CERTIFICATE REQUEST") :]


def make_key(root: str, entry: KeySpec) -> str:
    """A private key made here (kept if it exists), 0600 for its owner; its public half, returned."""
    key = host_path(root, entry["path"])
    if not os.path.exists(key):
        folder = os.path.dirname(key)
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o750)
            os.chown(folder, uid_of(entry["owner"]), gid_of(entry["group"]))
        if entry["algorithm"] == "ed25519":
            algorithm = "-algorithm ed25519"
        else:
            algorithm = "-algorithm RSA -pkeyopt rsa_keygen_bits:%d" % int(entry["bits"])
        temporary = key + ".provision-new"
        outcome = run("umask 077; rm -f %s; openssl genpkey %s -out %s" % (shlex.quote(temporary), algorithm, shlex.quote(temporary)))
        if outcome["exit"] != 0:
            raise Failure("making the key %s failed:\n%s" % (entry["name"], outcome["output"]))
        os.chown(temporary, uid_of(entry["owner"]), gid_of(entry["group"]))
        os.chmod(temporary, 0o600)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.rename(temporary, key)
        fsync_dir(os.path.dirname(key))
    outcome = run("openssl pkey -in %s -pubout" % shlex.quote(key))
    if outcome["exit"] != 0:
        raise Failure("reading the public half of %s failed:\n%s" % (entry["name"], outcome["output"]))
    return str(outcome["output"])


def op_stage(request: StageRequest) -> StageAnswer:
    root, run_id = request["root"], request["run_id"]
    if request.get("check"):
        staging = check_root(root, run_id)
        try:
            return stage_files(root, staging, request)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    lock = HostLock(root, request["holder"])
    lock.acquire("staging")
    staged = False
    try:
        remove_leftovers(root, run_id, [])
        result: StageAnswer = {"ok": True, "installed": [], "validations": []}
        result["installed"] = [s["command"] for s in install_packages(request.get("packages", []))]
        result["csrs"] = {entry["name"]: make_csr(root, entry) for entry in request.get("csr", [])}
        result["keys"] = {entry["path"]: make_key(root, entry) for entry in request.get("keys", [])}
        answer = stage_files(root, staging_root(root, run_id), request)
        answer["installed"], answer["csrs"], answer["keys"] = result["installed"], result["csrs"], result["keys"]
        if result["installed"]:
            # A package writes its own config (Postfix's main.cf): the commit compares with that, not with the probe.
            answer["seen_after_install"] = {path: regular_file_sha(host_path(root, path)) for path in request.get("declared", [])}
        staged = bool(answer.get("ok"))
        return answer
    finally:
        # A run whose files are staged keeps the host until its commit.
        lock.release(keep_lease=staged)


def stage_files(root: str, staging: str, request: StageRequest) -> StageAnswer:
    """The new files written under ``staging`` and every validator run against them."""
    result: StageAnswer = {"ok": True, "validations": []}
    if os.path.exists(staging):
        shutil.rmtree(staging)
    private_dir(os.path.dirname(staging))
    os.makedirs(staging, mode=0o700)
    staged = set()
    for entry in request.get("files", []):
        write_new(host_path(staging, entry["path"]), base64.b64decode(entry["content_b64"]), entry["mode"])
        staged.add(entry["path"])
    checks: List[Validation] = []
    for entry in request.get("files", []):
        validate = entry.get("validate")
        if validate:
            target = shlex.quote(host_path(staging, entry["path"]))
            checks.append(validation(run(validate.replace("%s", target)), "validate %s" % entry["path"]))
    absent = set(request.get("absent", []))
    for validator in request.get("validators", []):
        for path in validator["files"]:
            live = host_path(root, path)
            if path not in staged and path not in absent and os.path.isfile(live):
                os.makedirs(os.path.dirname(host_path(staging, path)), mode=0o700, exist_ok=True)
                shutil.copy2(live, host_path(staging, path))
        command = validator["command"].replace("{staging}", shlex.quote(staging))
        checks.append(validation(run(command), validator.get("description") or "validator of role %s" % validator["role"]))
    for check in checks:
        # A validator names a staged file by its staged path; the operator knows it
        # by the path it will have (line 8 of /etc/apache2/provision/vhosts.conf).
        check["output"] = check["output"].replace(staging, "")
    result["validations"] = checks
    if any(check["exit"] != 0 for check in checks):
        shutil.rmtree(staging, ignore_errors=True)
        result["ok"] = False
        failed = next(c for c in checks if c["exit"] != 0)
        # The check's own message, not the shell that ran it (-vv shows the commands sent).
        result["error"] = "validation failed (%s):\n%s" % (failed["what"], failed["output"].strip() or "exit %s" % failed["exit"])
    return result


def validation(outcome: CommandOutcome, what: str) -> Validation:
    return {
        "command": outcome["command"],
        "exit": outcome["exit"],
        "output": outcome["output"],
        "seconds": outcome["seconds"],
        "what": what,
    }


# --- backup (what a past run replaced) ---------------------------------------


def backup_root(root: str, run_id: str) -> str:
    return host_path(root, "%s/%s" % (BACKUP_DIR, run_id))


def backup_runs(root: str) -> List[str]:
    """The runs whose backups the host keeps, oldest first: by the time in their id, then
    (two runs in one second) by when their folder was made."""
    folder = host_path(root, BACKUP_DIR)
    if not os.path.isdir(folder):
        return []

    def age(name: str) -> Any:
        try:
            made = os.stat(os.path.join(folder, name)).st_mtime_ns
        except OSError:
            made = 0
        return (name.split("-")[0], made, name)

    return sorted(os.listdir(folder), key=age)


def op_backup(request: BackupRequest) -> BackupAnswer:
    root, run_id = request["root"], request["run_id"]
    runs = backup_runs(root)
    if "/" in run_id or run_id in ("", ".", "..") or run_id not in runs:
        shown = ", ".join(runs[-5:]) or "none"
        raise Failure("no backups of run %r on this host (the newest it keeps: %s)" % (run_id, shown))
    folder = backup_root(root, run_id)
    manifest = read_json(os.path.join(folder, MANIFEST))
    if not isinstance(manifest, list):
        raise Failure(
            "the backups of run %s have no manifest (made by an older provision): put them back by hand from %s" % (run_id, folder)
        )
    entries: List[BackupEntry] = manifest
    contents: Dict[str, str] = {}
    for entry in entries:
        if entry["existed"] and entry["sha256_before"] is not None:
            with open(host_path(folder, entry["path"]), "rb") as handle:
                contents[entry["path"]] = base64.b64encode(handle.read()).decode()
    return {"ok": True, "run_id": run_id, "entries": entries, "contents": contents, "runs": runs}


Operation = Callable[[Any], Any]
OPERATIONS: Dict[str, Operation] = {
    "probe": op_probe,
    "stage": op_stage,
    "backup": op_backup,
}
# Modules the controller may send beside this one (see protocol.MODULES_FOR_OP);
# each has its own OPERATIONS, found here when it was sent.
EXTENSIONS = ("provision.agent.commit", "provision.agent.mail")


def operations() -> Dict[str, Operation]:
    found = dict(OPERATIONS)
    for name in EXTENSIONS:
        module = sys.modules.get(name)
        if module is not None:
            found.update(getattr(module, "OPERATIONS", {}))
    return found


def handle(request: Dict[str, Any]) -> Answer:
    operation = operations().get(str(request.get("op")))
    if operation is None:
        return {"ok": False, "error": "bad request: unknown operation %r" % request.get("op")}
    try:
        answer: Answer = operation(request)
        return answer
    except Failure as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": "agent error: %s: %s" % (type(exc).__name__, exc)}


def main() -> None:
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except ValueError as exc:
        request = {"op": None, "error": str(exc)}
    answer = handle(request) if isinstance(request, dict) else {"ok": False, "error": "bad request"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
