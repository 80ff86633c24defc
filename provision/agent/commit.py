"""The agent's transaction: commit a staged run, or put one back; stdlib only.

Sent beside ``provision.agent.core`` for ``commit`` and ``revert``. A run
that changes a host leaves it either as it was or as declared, whatever
happens in between:

- the commit holds the host's lock (``core.HostLock``) and is a
  compare-and-swap: every declared file must still be what the probe saw;
- it is two-phase: every new file is written and fsync'd beside its
  destination, the originals are backed up (and kept beside as a hard link,
  so that a rollback needs no free space), and only then is anything
  renamed; a full disk fails before the first rename;
- a journal, written (fsync'd) before the first temporary file and before
  the first rename, names the renames and the handlers the commit owes; it
  is cleared only once the handlers have run and the services answer. A run
  that finds one (the agent was killed) finishes it first: the renames not
  done yet are done, the handlers run;
- after handlers and service starts, each service named in ``verify`` must
  be running after a settle time and accept connections on its ports, else
  the files are put back and the handlers run again;
- a rollback restores every file it can and names each one it could not,
  with the place where its previous content is kept.

Compatible with the oldest python3 a supported Debian ships (3.9).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import stat
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from provision.agent.core import (
    BACKUP_DIR,
    MANIFEST,
    TEMP_PREFIX,
    Failure,
    HostLock,
    backup_root,
    backup_runs,
    file_sha256,
    fsync_dir,
    gid_of,
    has_systemd,
    host_path,
    journal_path,
    name_of_gid,
    name_of_uid,
    private_dir,
    probe_service,
    read_json,
    regular_file_sha,
    remove_durably,
    remove_leftovers,
    run,
    staging_root,
    uid_of,
    write_durably,
)

if TYPE_CHECKING:
    from provision.agent.protocol import (
        BackupEntry,
        CommandOutcome,
        CommitAnswer,
        CommitFile,
        CommitRequest,
        Expected,
        FinishedJournal,
        HandlerOutcome,
        HandlerSpec,
        Holder,
        NotRestored,
        RevertAnswer,
        RevertRequest,
        VerifySpec,
    )

KEEP_BACKUPS = 10
PORT_TIMEOUT = 3.0


# --- files ---------------------------------------------------------------------


def copy_durably(source: str, dest: str, mode: int, uid: int, gid: int) -> None:
    """A new file ``dest`` (it must not exist) with ``source``'s bytes, on disk when this returns."""
    descriptor = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
            out.flush()
            os.fchown(out.fileno(), uid, gid)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
    except BaseException:
        if os.path.lexists(dest):
            os.unlink(dest)
        raise


def ensure_parent(path: str) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o755)


def changed_since_probe(root: str, expect: List[Expected], finished: Dict[str, Optional[str]]) -> List[str]:
    """The declared files that are no longer what the probe saw (or what a finished journal wrote since)."""
    changed = []
    for entry in expect:
        now = regular_file_sha(host_path(root, entry["path"]))
        if now != entry["sha256"] and not (entry["path"] in finished and now == finished[entry["path"]]):
            if entry["sha256"] is None:
                changed.append("%s (it exists now)" % entry["path"])
            elif now is None:
                changed.append("%s (it was removed)" % entry["path"])
            else:
                changed.append("%s (its content changed)" % entry["path"])
    return changed


# --- the transaction -------------------------------------------------------------
# A step is one file: {path, live, kind: content|meta|remove, temp, keep, backup,
# existed, mode, uid, gid (before), renamed}. Steps are plain data, so that
# the journal holds them and a later run can finish or undo them.


class Transaction:
    def __init__(self, root: str, run_id: str, holder: Holder) -> None:
        self.root = root
        self.run_id = run_id
        self.holder = holder
        self.backup_dir = backup_root(root, run_id)
        self.steps: List[Dict[str, Any]] = []
        self.handlers: List[HandlerSpec] = []
        self.verify: List[VerifySpec] = []
        self.started = time.time()

    # --- journal -----------------------------------------------------------
    def write_journal(self, state: str) -> None:
        journal = {
            "run_id": self.run_id,
            "state": state,
            "started": self.started,
            "holder": self.holder,
            "steps": self.steps,
            "handlers": self.handlers,
            "verify": self.verify,
        }
        write_durably(journal_path(self.root), json.dumps(journal).encode())

    @classmethod
    def from_journal(cls, root: str, journal: Dict[str, Any]) -> Transaction:
        transaction = cls(root, str(journal.get("run_id")), journal.get("holder") or {})  # type: ignore[arg-type]
        transaction.steps = list(journal.get("steps") or [])
        transaction.handlers = list(journal.get("handlers") or [])
        transaction.verify = list(journal.get("verify") or [])
        transaction.started = float(journal.get("started") or 0)
        return transaction

    def clear_journal(self) -> None:
        remove_durably(journal_path(self.root))

    # --- phase one: everything written beside, nothing replaced ------------------
    def prepare(self, files: List[CommitFile], staging: str, handlers: List[HandlerSpec], verify: List[VerifySpec]) -> None:
        self.handlers, self.verify = handlers, verify
        for index, entry in enumerate(files):
            live = host_path(self.root, entry["path"])
            existed = os.path.lexists(live)
            step: Dict[str, Any] = {"path": entry["path"], "live": live, "existed": existed, "renamed": False}
            step["kind"] = "remove" if entry.get("remove") else ("content" if entry["content_changed"] else "meta")
            if step["kind"] == "remove" and not existed:
                continue  # already gone
            if existed:
                info = os.lstat(live)
                step.update(mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid, sha256_before=file_sha256(live))
            folder = os.path.dirname(live)
            tag = "%s-%d" % (self.run_id, index)
            if step["kind"] == "content":
                step["temp"] = os.path.join(folder, "%snew-%s" % (TEMP_PREFIX, tag))
                step["keep"] = os.path.join(folder, "%sold-%s" % (TEMP_PREFIX, tag)) if existed else None
            elif step["kind"] == "remove":
                step["keep"] = os.path.join(folder, "%sold-%s" % (TEMP_PREFIX, tag))  # moved aside, not linked
            step["entry"] = entry
            self.steps.append(step)
        # The journal first: whatever is created below, a later run knows of it.
        self.write_journal("preparing")
        folders = set()
        for step in self.steps:
            entry = step["entry"]
            uid, gid = uid_of(entry["owner"]), gid_of(entry["group"])
            if step["kind"] == "content":
                staged = host_path(staging, entry["path"])
                if file_sha256(staged) != entry["sha256"]:
                    raise Failure("staged copy of %s does not match what was validated" % entry["path"])
                ensure_parent(step["live"])
                copy_durably(staged, step["temp"], entry["mode"], uid, gid)
            if step["existed"]:
                step["backup"] = self.back_up(step)
                if step.get("keep") and step["kind"] == "content":
                    try:
                        os.link(step["live"], step["keep"])
                    except OSError:
                        step["keep"] = None  # no hard links here: a rollback copies the backup instead
            folders.add(os.path.dirname(step["live"]))
        self.write_manifest()
        for folder in folders:
            fsync_dir(folder)
        # From here on, a run that finds this journal completes the renames.
        self.write_journal("committed")

    def back_up(self, step: Dict[str, Any]) -> str:
        copy = host_path(self.backup_dir, step["path"])
        private_dir(host_path(self.root, BACKUP_DIR))
        os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
        if os.path.lexists(copy):
            os.unlink(copy)
        copy_durably(step["live"], copy, step["mode"], step["uid"], step["gid"])
        fsync_dir(os.path.dirname(copy))
        return copy

    def write_manifest(self) -> None:
        entries: List[BackupEntry] = []
        for step in self.steps:
            entries.append(
                {
                    "path": step["path"],
                    "existed": step["existed"],
                    "mode": step.get("mode"),
                    "owner": name_of_uid(step["uid"]) if step["existed"] else None,
                    "group": name_of_gid(step["gid"]) if step["existed"] else None,
                    "sha256_before": step.get("sha256_before"),
                    "sha256_after": None if step["kind"] == "remove" else step["entry"]["sha256"],
                }
            )
        private_dir(self.backup_dir)
        write_durably(os.path.join(self.backup_dir, MANIFEST), json.dumps(entries).encode())

    def abandon(self) -> List[str]:
        """Phase one failed: remove what it wrote; nothing was replaced."""
        removed = []
        for step in self.steps:
            for name in ("temp", "keep"):
                if step.get(name) and os.path.lexists(step[name]):
                    os.unlink(step[name])
                    removed.append(step[name])
        self.clear_journal()
        return removed

    # --- phase two: the renames -------------------------------------------------
    def commit(self) -> None:
        folders = set()
        for step in self.steps:
            if step["kind"] == "content" and not step["renamed"]:
                os.rename(step["temp"], step["live"])
                step["renamed"] = True
                folders.add(os.path.dirname(step["live"]))
            elif step["kind"] == "remove" and not step["renamed"]:
                os.rename(step["live"], step["keep"])  # aside until the run is done: a rollback moves it back
                step["renamed"] = True
                folders.add(os.path.dirname(step["live"]))
        for folder in folders:
            fsync_dir(folder)
        for step in self.steps:
            if step["kind"] == "meta":
                entry = step["entry"]
                os.chown(step["live"], uid_of(entry["owner"]), gid_of(entry["group"]))
                os.chmod(step["live"], entry["mode"])
                step["renamed"] = True

    def roll_forward(self) -> List[str]:
        """The renames an interrupted commit had not done yet (its temporary file is still there)."""
        done = []
        for step in self.steps:
            if step.get("kind") == "content" and step.get("temp") and os.path.lexists(step["temp"]):
                os.rename(step["temp"], step["live"])
                done.append(step["path"])
            elif step.get("kind") == "remove" and os.path.lexists(step["live"]) and not os.path.lexists(step["keep"]):
                os.rename(step["live"], step["keep"])
                done.append(step["path"])
            step["renamed"] = step.get("kind") in ("content", "remove")
        return done

    def rollback(self) -> Tuple[List[str], List[NotRestored]]:
        """Every file put back that can be; each one that could not is named with its backup."""
        restored: List[str] = []
        failed: List[NotRestored] = []
        for step in reversed(self.steps):
            if not step.get("renamed"):
                continue
            try:
                self.restore(step)
                step["renamed"] = False
                restored.append(step["path"])
            except OSError as exc:
                failed.append({"path": step["path"], "error": exc.strerror or str(exc), "backup": step.get("backup")})
        for folder in {os.path.dirname(step["live"]) for step in self.steps}:
            with contextlib.suppress(OSError):
                fsync_dir(folder)
        return restored, failed

    def restore(self, step: Dict[str, Any]) -> None:
        live = step["live"]
        if step["kind"] == "meta":
            os.chown(live, step["uid"], step["gid"])
            os.chmod(live, step["mode"])
        elif not step["existed"]:
            if os.path.lexists(live):
                os.unlink(live)
        elif step.get("keep") and os.path.lexists(step["keep"]):
            os.rename(step["keep"], live)  # no free space needed
        else:
            temp = os.path.join(os.path.dirname(live), "%sback-%s" % (TEMP_PREFIX, self.run_id))
            if os.path.lexists(temp):
                os.unlink(temp)
            copy_durably(step["backup"], temp, step["mode"], step["uid"], step["gid"])
            os.rename(temp, live)

    def finish(self) -> None:
        """Success: the kept originals go (their backups stay), the journal is cleared."""
        for step in self.steps:
            keep = step.get("keep")
            if keep and os.path.lexists(keep):
                # Where it cannot go (a file system that went read-only), a later run removes it.
                with contextlib.suppress(OSError):
                    os.unlink(keep)
        self.clear_journal()


# --- handlers, services, verification ------------------------------------------------


def run_handler(handler: HandlerSpec) -> HandlerOutcome:
    ran = run(handler["command"])
    outcome: HandlerOutcome = {
        "command": ran["command"],
        "exit": ran["exit"],
        "output": ran["output"],
        "seconds": ran["seconds"],
        "name": handler["name"],
    }
    check_command = handler.get("check")
    if outcome["exit"] == 0 and check_command:
        check = run(check_command)
        if check["exit"] != 0:
            outcome["exit"] = check["exit"]
            said = check["output"].strip()
            outcome["output"] += "\nthe check after it failed: %s" % (said or "exit %s from %s" % (check["exit"], check_command))
    return outcome


def run_handlers(handlers: List[HandlerSpec]) -> Tuple[List[HandlerOutcome], Optional[HandlerOutcome]]:
    """Run in order until one fails; (outcomes, the failed one)."""
    outcomes = []
    for handler in handlers:
        outcome = run_handler(handler)
        outcomes.append(outcome)
        if outcome["exit"] != 0:
            return outcomes, outcome
    return outcomes, None


def port_target(text: str) -> Tuple[str, int]:
    """'127.0.0.2:80', '[::1]:443', '*:80' or '80' as (address, port); any address is looked at on loopback."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def answers(target: Tuple[str, int], timeout: float) -> Optional[str]:
    """None when something accepts a connection on ``target`` within ``timeout``, else why not."""
    deadline = time.time() + timeout
    reason = "no answer"
    while True:
        try:
            with socket.create_connection(target, timeout=max(0.2, deadline - time.time())):
                return None
        except OSError as exc:
            reason = exc.strerror or str(exc)
        if time.time() >= deadline:
            return reason
        time.sleep(0.1)


def verify_services(specs: List[VerifySpec]) -> Tuple[List[str], List[str]]:
    """(services found up, problems): each must be running after its settle time and answer on its ports."""
    if not specs:
        return [], []
    time.sleep(max(spec["settle"] for spec in specs))
    up, problems = [], []
    for spec in specs:
        name = spec["service"]
        if not probe_service(name)["active"]:
            problems.append("service %s is not running %gs after its handlers and start" % (name, spec["settle"]))
            continue
        for port in spec["ports"]:
            try:
                target = port_target(port)
            except ValueError:
                problems.append("service %s: %r is not address:port" % (name, port))
                continue
            reason = answers(target, PORT_TIMEOUT)
            if reason is not None:
                problems.append("service %s does not answer on %s (%s)" % (name, port, reason))
        else:
            up.append(name)
    return up, problems


def service_command(name: str, action: str) -> str:
    if has_systemd():
        return "systemctl %s %s" % (action, shlex.quote(name))
    if action in ("enable", "disable"):
        return "update-rc.d %s %s" % (shlex.quote(name), "defaults" if action == "enable" else "disable")
    return "/etc/init.d/%s %s" % (shlex.quote(name), action)


def ensure_services(services: List[Any]) -> Tuple[List[CommandOutcome], Optional[str]]:
    outcomes: List[CommandOutcome] = []
    for service in services:
        # A handler may have started, stopped, installed or enabled it since the probe.
        state = probe_service(service["name"])
        active, enabled = state["active"], state["enabled"]
        for action in ("enable", "disable", "start", "stop"):
            if (action == "start" and active) or (action == "stop" and not active):
                continue
            if (action == "enable" and enabled) or (action == "disable" and enabled is False):
                continue
            if service.get(action):
                done = run(service_command(service["name"], action))
                outcomes.append(done)
                if done["exit"] != 0:
                    return outcomes, "%s %s failed:\n%s" % (action, service["name"], done["output"].strip())
    return outcomes, None


def describe_rollback(restored: List[str], failed: List[NotRestored]) -> str:
    parts = []
    if restored:
        parts.append("previous files restored: %s" % ", ".join(sorted(restored)))
    for entry in failed:
        kept = "; its previous content is in %s" % entry["backup"] if entry.get("backup") else ""
        parts.append("NOT restored: %s (%s%s)" % (entry["path"], entry["error"], kept))
    return "; ".join(parts) or "no file had been replaced"


# --- an interrupted run's journal ------------------------------------------------------


def finish_journal(root: str) -> Optional[FinishedJournal]:
    """Complete what an interrupted commit owes: its renames, handlers and checks.

    Called under the host's lock, so the journal's run is not running. A
    journal still 'preparing' replaced nothing: its temporary files go. A
    'committed' one had its files in place (or some of them): the missing
    renames are done and its handlers run; if one fails, its previous files
    are put back and the handlers run again, as its own commit would have.
    """
    journal = read_json(journal_path(root))
    if not isinstance(journal, dict):
        return None
    transaction = Transaction.from_journal(root, journal)
    finished: FinishedJournal = {"run_id": transaction.run_id, "state": str(journal.get("state")), "handlers": []}
    if journal.get("state") != "committed":
        finished["removed"] = transaction.abandon()
        return finished
    finished["renamed"] = transaction.roll_forward()
    # What the files hold once it is finished: the probe of the run finishing it saw them half done.
    finished["written"] = {
        step["path"]: step["entry"]["sha256"] if step["kind"] == "content" else None
        for step in transaction.steps
        if step.get("kind") in ("content", "remove")
    }
    outcomes, failed = run_handlers(transaction.handlers)
    finished["handlers"] = outcomes
    problems: List[str] = []
    if failed is None:
        _up, problems = verify_services(transaction.verify)
    if failed is not None or problems:
        restored, not_restored = transaction.rollback()
        recovery, _ = run_handlers([h for h in transaction.handlers if h["name"] in {o["name"] for o in outcomes}])
        why = (
            "handler %r failed (exit %s): %s" % (failed["name"], failed["exit"], failed["output"].strip())
            if failed
            else "; ".join(problems)
        )
        finished["error"] = "finishing interrupted run %s: %s; %s; its handlers ran again (%s)" % (
            transaction.run_id,
            why,
            describe_rollback(restored, not_restored),
            ", ".join("%s: exit %s" % (o["name"], o["exit"]) for o in recovery) or "none",
        )
    transaction.finish()
    return finished


# --- operations ----------------------------------------------------------------------


def op_commit(request: CommitRequest) -> CommitAnswer:
    root, run_id = request["root"], request["run_id"]
    lock = HostLock(root, request["holder"])
    lock.acquire("committing")
    try:
        return commit_locked(root, run_id, request, lock.holder)
    finally:
        # Done or undone, this run's staged copies have served.
        shutil.rmtree(staging_root(root, run_id), ignore_errors=True)
        lock.release(keep_lease=False)


def commit_locked(root: str, run_id: str, request: CommitRequest, holder: Holder) -> CommitAnswer:
    staging = staging_root(root, run_id)
    result: CommitAnswer = {"ok": True, "written": [], "handlers": [], "services": [], "verified": [], "restored": [], "not_restored": []}
    finished = finish_journal(root)
    written_since: Dict[str, Optional[str]] = {}
    if finished is not None:
        result["journal"] = finished
        if finished.get("error"):
            result["ok"], result["error"] = False, "%s\nthis run changed nothing" % finished["error"]
            return result
        written_since = finished.pop("written", {})
    files = request.get("files", [])
    paths = [entry["path"] for entry in files] + [entry["path"] for entry in request.get("expect", [])]
    result["cleaned"] = remove_leftovers(root, run_id, paths)
    changed = changed_since_probe(root, request.get("expect", []), written_since)
    if changed:
        raise Failure(
            "the host changed since it was probed (another run, or a person): %s; nothing was changed, run again" % ", ".join(changed)
        )
    for entry in request.get("directories", []):
        path = host_path(root, entry["path"])
        if not os.path.isdir(path):
            os.makedirs(path, mode=entry["mode"] if entry["mode"] is not None else 0o755)
        if entry["mode"] is None:
            continue  # only made sure it exists
        os.chown(path, uid_of(entry["owner"]), gid_of(entry["group"]))
        os.chmod(path, entry["mode"])
    transaction = Transaction(root, run_id, holder)
    handlers = request.get("handlers", [])
    try:
        transaction.prepare(files, staging, handlers, request.get("verify", []))
    except (OSError, Failure) as exc:
        transaction.abandon()
        result["ok"], result["error"] = False, "commit failed before any file was replaced (nothing was changed): %s" % describe_os(exc)
        return result
    try:
        transaction.commit()
    except (OSError, Failure) as exc:
        return undo(result, transaction, [], "replacing the files failed: %s" % describe_os(exc))
    outcomes, failed = run_handlers(handlers)
    result["handlers"] = outcomes
    if failed is not None:
        why = "handler %r failed (exit %s):\n%s" % (failed["name"], failed["exit"], failed["output"].strip())
        return undo(result, transaction, outcomes, why)
    services, service_error = ensure_services(request.get("services", []))
    result["services"] = services
    if service_error is not None:
        return undo(result, transaction, outcomes, service_error)
    up, problems = verify_services(request.get("verify", []))
    result["verified"] = up
    if problems:
        return undo(result, transaction, outcomes, "; ".join(problems), request)
    transaction.finish()
    result["written"] = [step["path"] for step in transaction.steps]
    result["backup_dir"] = transaction.backup_dir
    prune_backups(root, int(request.get("keep_backups", KEEP_BACKUPS)))
    return result


def undo(
    result: CommitAnswer, transaction: Transaction, ran: List[HandlerOutcome], why: str, request: Optional[CommitRequest] = None
) -> CommitAnswer:
    """Put the files back, run again the handlers that ran, and say what state the host is in."""
    restored, not_restored = transaction.rollback()
    names = {outcome["name"] for outcome in ran}
    recovery, _ = run_handlers([h for h in transaction.handlers if h["name"] in names])
    transaction.finish()
    result["ok"], result["restored"], result["not_restored"], result["recovery"] = False, restored, not_restored, recovery
    state = describe_rollback(restored, not_restored)
    if request is not None and request.get("verify"):
        ensure_services(request.get("services", []))
        up, problems = verify_services(request["verify"])
        state += "; after that: %s" % ("; ".join(problems) if problems else "%s running again" % ", ".join(up))
    if recovery:
        state += "; handlers run again: %s" % ", ".join("%s (exit %s)" % (o["name"], o["exit"]) for o in recovery)
    # The first line says what failed and what state the host is left in; the
    # failing command's own output (Postfix's reason) follows it.
    head, _, detail = why.partition("\n")
    result["error"] = "%s, %s" % (head.rstrip(":"), state) + ("\n" + detail if detail.strip() else "")
    return result


def describe_os(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return "%s: %s" % (exc.filename, exc.strerror)
    return str(exc)


def op_revert(request: RevertRequest) -> RevertAnswer:
    """Put back the files of ``run_id`` (from its backups), where they are still what that run wrote."""
    root, run_id = request["root"], request["run_id"]
    lock = HostLock(root, request["holder"])
    lock.acquire("reverting")
    try:
        manifest = {entry["path"]: entry for entry in read_json(os.path.join(backup_root(root, run_id), MANIFEST)) or []}
        expect = {entry["path"]: entry["sha256"] for entry in request.get("expect", [])}
        restored: List[str] = []
        failed: List[NotRestored] = []
        transaction = Transaction(root, run_id, lock.holder)
        for path in request.get("paths", []):
            live = host_path(root, path)
            entry = manifest.get(path)
            if entry is None:
                failed.append({"path": path, "error": "run %s has no backup of it" % run_id, "backup": None})
                continue
            if path in expect and regular_file_sha(live) != expect[path]:
                failed.append({"path": path, "error": "changed since run %s wrote it: left alone" % run_id, "backup": None})
                continue
            step: Dict[str, Any] = {"path": path, "live": live, "kind": "content", "existed": entry["existed"], "keep": None}
            if entry["existed"]:
                step.update(backup=host_path(backup_root(root, run_id), path), mode=entry["mode"])
                step.update(uid=uid_of(entry["owner"] or "root"), gid=gid_of(entry["group"] or "root"))
            try:
                transaction.restore(step)
                restored.append(path)
            except OSError as exc:
                failed.append({"path": path, "error": exc.strerror or str(exc), "backup": step.get("backup")})
        outcomes, _ = run_handlers(request.get("handlers", []))
        answer: RevertAnswer = {"ok": not failed, "restored": restored, "not_restored": failed, "handlers": outcomes}
        if failed:
            answer["error"] = describe_rollback(restored, failed)
        return answer
    finally:
        lock.release(keep_lease=False)


def prune_backups(root: str, keep: int) -> None:
    """Keep the backups of the newest ``keep`` runs (run ids sort by time)."""
    runs = backup_runs(root)
    for name in runs[:-keep] if keep > 0 else []:
        shutil.rmtree(host_path(root, "%s/%s" % (BACKUP_DIR, name)), ignore_errors=True)


OPERATIONS: Dict[str, Callable[[Any], Any]] = {
    "commit": op_commit,
    "revert": op_revert,
}
