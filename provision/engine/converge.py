"""Converging one host: probe → diff → stage and validate → commit.

One round trip for a host with nothing to change (the probe), three at most
with changes (probe; upload + validate in staging; commit + handlers), on
one connection. The pure parts (diff, rendering) happen on the controller.

A check is the same up to the commit: a drifted host's new files are also
staged and validated (a second round trip), so that "would change" is never
said of a change that apply would refuse. An interrupted run's journal found
by the probe is reported by a check and finished by an apply (its handlers
first). After a change to a role that guards the login (sshd), a new SSH
login as the run's own user must succeed, else the change is put back.
"""

from __future__ import annotations

import base64
import getpass
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from provision.agent.protocol import (
    CommitAnswer,
    CommitFile,
    CommitRequest,
    CsrSpec,
    Expected,
    FileStat,
    Holder,
    KeySpec,
    LeaseInfo,
    ProbeAnswer,
    ProbeFile,
    ProbeRequest,
    RevertAnswer,
    RevertRequest,
    StageAnswer,
    StageRequest,
    VerifySpec,
)
from provision.connectors.base import Connector
from provision.engine.agent_call import call_agent
from provision.engine.diffs import file_diff, mask
from provision.engine.hosts import HostStatus
from provision.engine.plan import plan as make_plan
from provision.errors import ConnectionFailure, ProvisionError, RemoteError
from provision.roles.compiler import CompiledHost, VersionRefused
from provision.roles.facts import FACT_PACKAGES, HostFacts
from provision.roles.mergers import MERGERS
from provision.state import ActualState, DesiredState, FileFact, Plan, ServiceChange, ServiceFact

PROBE_TIMEOUT = 120.0
STAGE_TIMEOUT = 3600.0  # package installs from a mirror can be slow
COMMIT_TIMEOUT = 900.0
KEEP_BACKUPS = 10


@dataclass(frozen=True)
class ConvergeOptions:
    """What one run asks of every host."""

    check: bool
    want_diff: bool = False
    run_id: str = ""
    holder: Holder | None = None
    """Who this run is, for the host's lock (apply)."""
    keep_backups: int = KEEP_BACKUPS
    validate_drift: bool = True
    """A check stages and validates a drifted host's new files (one more round trip)."""


Login = Callable[[], None]
"""Opens a new connection to the host as the run's own user and closes it; raises ConnectionFailure."""


@dataclass
class FileReport:
    path: str
    reasons: list[str]
    secret: bool
    diff: str | None = None


@dataclass
class HostResult:
    host: str
    status: HostStatus = HostStatus.OK
    files: list[FileReport] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    handlers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the user should know that is neither a change nor an error (leftovers removed, a finished journal)."""
    facts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    """Installed version of each package the probe looked at (None: not installed)."""
    refused: bool = False
    """A role refused the host's release (a version too old, see ``requires``); nothing was pushed."""
    round_trips: int = 0
    seconds: float = 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.files or self.directories or self.packages or self.services or self.problems)


def probe_request(desired: DesiredState, want_diff: bool, provisional: bool = False) -> ProbeRequest:
    """The probe for ``desired``. ``provisional``: the desired state will be
    compiled again with the host's facts, so for a diff the current content
    of every file comes back (the final content is not known yet)."""
    extra_files, public_keys, generated_paths = generator_probe(desired)
    # Files a generator decides on after the probe are probed too (their
    # content is not known yet): a converged host then converges to nothing.
    files: list[ProbeFile] = [
        {
            "path": path,
            "sha256": "" if provisional else entry.sha256,
            "want_content": want_diff and not entry.secret,
            "always_content": entry.merge is not None,
        }
        for path, entry in desired.files.items()
    ]
    files += [_stat_only(path) for path in dict.fromkeys([*generated_paths, *desired.absent]) if path not in desired.files]
    return {
        "op": "probe",
        "files": files,
        "directories": list(desired.directories),
        "packages": desired.packages,
        "services": sorted({s.name for s in desired.services}),
        "facts": desired.facts,
        "extra_files": extra_files,
        "public_keys": public_keys,
        "versions": list(dict.fromkeys([*FACT_PACKAGES, *desired.packages, *desired.version_packages])),
        # apt is asked (tens of milliseconds) only about what the roles install or look at.
        "candidates": list(dict.fromkeys([*desired.packages, *desired.version_packages])),
    }


def covers(sent: ProbeRequest, wanted: ProbeRequest) -> bool:
    """Whether the answer to ``sent`` tells all that ``wanted`` asks."""
    sent_files = {entry["path"]: entry for entry in sent["files"]}
    for entry in wanted["files"]:
        before = sent_files.get(entry["path"])
        if before is None or (entry["always_content"] and not before["always_content"]):
            return False
    listed = ("directories", "packages", "services", "extra_files", "public_keys", "versions", "candidates")
    return all(set(wanted[key]) <= set(sent[key]) for key in listed) and wanted["facts"].items() <= sent["facts"].items()  # type: ignore[literal-required]


Refine = Callable[[HostFacts], CompiledHost]


def _stat_only(path: str) -> ProbeFile:
    return {"path": path, "sha256": "", "want_content": False, "always_content": False}


def generator_probe(desired: DesiredState) -> tuple[list[str], list[str], list[str]]:
    """What the generators need to know: current files, public keys, and every file they may write."""
    if not desired.generators:
        return [], [], []
    from provision.roles import certificates, dkim

    contents: list[str] = []
    keys: list[str] = []
    managed: list[str] = []
    for kind, data in desired.generators:
        more_contents, more_keys = (dkim.probe_paths if kind == "dkim_keys" else certificates.probe_paths)(data)
        if kind != "dkim_keys":
            managed += certificates.managed_paths(data)
        contents += more_contents
        keys += more_keys
    return contents, keys, managed


def generated(desired: DesiredState, actual: ActualState) -> tuple[DesiredState, list[CsrSpec], list[KeySpec]]:
    """Add the files the generators decide on, now that the host is known;
    and the CSRs and keys the host must make."""
    if not desired.generators:
        return desired, [], []
    from provision.roles.certificates import plan_certificates
    from provision.roles.dkim import plan_keys

    files = dict(desired.files)
    requests: list[CsrSpec] = []
    keys: list[KeySpec] = []
    for kind, data in desired.generators:
        if kind == "dkim_keys":
            keys += plan_keys(data, actual.public_keys).key_requests
            continue
        decided = plan_certificates(desired.host, data, actual.extra_contents, actual.public_keys)
        for entry in decided.files:
            for name in entry.notify:
                if name not in desired.handlers:
                    raise ProvisionError(f"certificate {entry.source} notifies {name!r}, which is not a handler of this host")
            files[entry.path] = entry
        requests += decided.csr_requests
    return replace(desired, files=files), requests, keys


def parse_probe(host: str, answer: ProbeAnswer) -> ActualState:
    actual = ActualState(host=host, packages=dict(answer.get("packages", {})), facts=dict(answer.get("facts", {})))
    actual.versions = {name: entry["installed"] for name, entry in answer.get("versions", {}).items()}
    for path, fact in answer.get("files", {}).items():
        actual.files[path] = _fact(path, fact)
    for path, fact in answer.get("directories", {}).items():
        actual.directories[path] = _fact(path, fact)
    for name, service in answer.get("services", {}).items():
        actual.services[name] = ServiceFact(name, bool(service["active"]), service["enabled"])
    for path, content in answer.get("extra_files", {}).items():
        actual.extra_contents[path] = base64.b64decode(content) if content is not None else None
    actual.public_keys = dict(answer.get("public_keys", {}))
    return actual


def _fact(path: str, fact: FileStat) -> FileFact:
    if not fact.get("exists"):
        return FileFact(path, exists=False)
    content = base64.b64decode(fact["content_b64"]) if "content_b64" in fact else None
    return FileFact(
        path, True, bool(fact.get("is_file")), fact.get("sha256"), fact.get("mode"), fact.get("owner"), fact.get("group"), content
    )


def merged(desired: DesiredState, actual: ActualState) -> DesiredState:
    """Files shared with the host get their content from its current one."""
    if not any(entry.merge for entry in desired.files.values()):
        return desired
    files = dict(desired.files)
    for path, entry in desired.files.items():
        if entry.merge is None:
            continue
        fact = actual.files.get(path)
        if fact is not None and fact.exists and fact.content is None:
            raise RemoteError(f"{path} is too large to merge managed lines into")
        current = fact.content if fact is not None and fact.exists and fact.content is not None else b""
        kind, data = entry.merge
        files[path] = replace(entry, content=MERGERS[kind](current, data))
    return replace(desired, files=files)


def save_public_keys(desired: DesiredState, public_keys: dict[str, str | None]) -> None:
    """Each DKIM key's TXT record, from its public half, kept on the controller."""
    from provision.roles.dkim import save_records

    for kind, data in desired.generators:
        if kind == "dkim_keys":
            save_records(desired.host, data, public_keys)


def save_csrs(desired: DesiredState, csrs: dict[str, str]) -> None:
    """Certificate signing requests made on the host, kept on the controller."""
    for kind, data in desired.generators:
        if kind != "certificates":
            continue
        folder = Path(data["csr_dir"])
        for name, pem in csrs.items():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{desired.host}-{name}.csr").write_text(pem)


A = TypeVar("A", ProbeAnswer, StageAnswer, CommitAnswer)


def _checked(answer: A, step: str) -> A:
    if not answer.get("ok"):
        raise RemoteError(f"{step}: {answer.get('error', 'unknown failure')}")
    return answer


def report_plan(result: HostResult, plan: Plan, want_diff: bool, secrets: list[str], check: bool) -> None:
    """What the plan would do, in the words of a check ("would start") or of an apply."""
    for change in plan.files:
        entry = change.desired
        diff = file_diff(change.actual, entry, secrets) if want_diff else None
        result.files.append(FileReport(change.path, list(change.reasons), entry.secret, diff))
    result.directories = [d.desired.path for d in plan.directories]
    result.packages = list(plan.packages)
    result.services = [_service_words(s, check) for s in plan.services]
    result.problems = list(plan.problems)
    result.files += [FileReport(c["key_path"], ["key and CSR made on the host"], True) for c in plan.csr_requests]
    result.files += [FileReport(k["path"], [f"DKIM key {k['name']} made on the host"], True) for k in plan.key_requests]
    result.files += [FileReport(path, ["remove"], False) for path in plan.removals]
    result.handlers = [h.name for h in plan.handlers]


def _service_words(change: ServiceChange, check: bool) -> str:
    actions = [a for a, on in (("start", change.start), ("stop", change.stop)) if on]
    if change.enable is not None:
        actions.append("enable" if change.enable else "disable")
    done = {"start": "started", "stop": "stopped", "enable": "enabled", "disable": "disabled"}
    words = [f"would {a}" for a in actions] if check else [done[a] for a in actions]
    return f"{change.desired.name}: {', '.join(words)}"


def stage_request(plan: Plan, run_id: str, holder: Holder | None, check: bool = False) -> StageRequest:
    request: StageRequest = {
        "op": "stage",
        "run_id": run_id,
        "packages": [] if check else plan.packages,
        "files": [
            {
                "path": c.path,
                "content_b64": base64.b64encode(c.desired.content).decode(),
                "mode": c.desired.mode,
                "validate": c.desired.validate,
            }
            for c in plan.files
            if c.content_changed
        ],
        "validators": [
            {"command": v.command, "files": list(v.files), "role": v.role, "description": v.description} for v in plan.validators
        ],
        "csr": [] if check else plan.csr_requests,
        "keys": [] if check else plan.key_requests,
        "check": check,
        "absent": list(plan.removals),
    }
    if holder is not None:
        request["holder"] = holder
    return request


def expected(desired: DesiredState, actual: ActualState) -> list[Expected]:
    """What the probe saw at every declared file: the commit's compare-and-swap."""
    seen: list[Expected] = []
    for path in [*desired.files, *desired.absent]:
        fact = actual.files.get(path)
        seen.append({"path": path, "sha256": fact.sha256 if fact is not None and fact.exists else None})
    return seen


def verify_specs(plan: Plan, desired: DesiredState) -> list[VerifySpec]:
    """Services to find up after the commit: those of roles whose handlers run, and those it starts."""
    roles = {h.role for h in plan.handlers}
    started = {s.desired.name for s in plan.services if s.start}
    return [
        {"service": s.name, "settle": s.settle, "ports": list(s.ports)}
        for s in desired.services
        if s.state == "started" and (s.role in roles or s.name in started)
    ]


def _removal(path: str) -> CommitFile:
    return {"path": path, "mode": 0, "owner": "root", "group": "root", "content_changed": False, "sha256": "", "remove": True}


def commit_request(plan: Plan, run_id: str, holder: Holder, expect: list[Expected], verify: list[VerifySpec], keep: int) -> CommitRequest:
    files: list[CommitFile] = [
        {
            "path": c.path,
            "mode": c.desired.mode,
            "owner": c.desired.owner,
            "group": c.desired.group,
            "content_changed": c.content_changed,
            "sha256": c.desired.sha256,
        }
        for c in plan.files
    ]
    files += [_removal(path) for path in plan.removals]
    return {
        "op": "commit",
        "run_id": run_id,
        "holder": holder,
        "directories": [
            {"path": d.desired.path, "mode": d.desired.mode, "owner": d.desired.owner, "group": d.desired.group} for d in plan.directories
        ],
        "files": files,
        "expect": expect,
        "handlers": [{"name": h.name, "command": h.command, "check": h.check} for h in plan.handlers],
        "services": [
            {"name": s.desired.name, "start": s.start, "stop": s.stop, "enable": s.enable is True, "disable": s.enable is False}
            for s in plan.services
        ],
        "verify": verify,
        "keep_backups": keep,
    }


def probe_host(
    connector: Connector, desired: DesiredState, want_diff: bool, refine: Refine | None, secrets: list[str]
) -> tuple[DesiredState, ActualState, list[str], ProbeAnswer]:
    """Probe the host; with ``refine``, compile it again with the facts the
    probe reported. Nothing is pushed yet: a refusal (a version too old) or a
    mistake stops here. A second probe is needed only when the new desired
    state names something the first did not ask about."""
    sent = probe_request(desired, want_diff, provisional=refine is not None)
    answer = _checked(call_agent(connector, sent, PROBE_TIMEOUT), "probe")
    if refine is not None:
        compiled = refine(HostFacts.from_probe(answer.get("facts", {}), answer.get("versions", {})))
        desired, secrets = compiled.desired, compiled.secrets
        wanted = probe_request(desired, want_diff, provisional=True)
        if not covers(sent, wanted):
            answer = _checked(call_agent(connector, wanted, PROBE_TIMEOUT), "probe")
    return desired, parse_probe(desired.host, answer), secrets, answer


def converge(
    connector: Connector,
    desired: DesiredState,
    options: ConvergeOptions,
    secrets: list[str],
    login: Login | None = None,
    refine: Refine | None = None,
) -> HostResult:
    """Bring one host to ``desired`` (or, with ``options.check``, only report what would change).
    ``refine`` compiles the host again with its facts (see ``probe_host``)."""
    result = HostResult(host=desired.host)
    started = time.monotonic()
    try:
        _converge(connector, desired, options, secrets, login, refine, result)
    except ConnectionFailure as exc:
        result.status = HostStatus.UNREACHABLE
        result.errors.append(mask(str(exc), secrets))
    except VersionRefused as exc:
        result.status, result.refused = HostStatus.FAILED, True
        result.errors.append(str(exc))
    except (ProvisionError, RemoteError) as exc:
        result.status = HostStatus.FAILED
        # A validator or handler may echo a config line that holds a secret.
        result.errors.append(mask(str(exc), secrets))
    finally:
        result.seconds = round(time.monotonic() - started, 3)
    return result


def _converge(
    connector: Connector,
    desired: DesiredState,
    options: ConvergeOptions,
    secrets: list[str],
    login: Login | None,
    refine: Refine | None,
    result: HostResult,
) -> None:
    desired, actual, secrets, answer = probe_host(connector, desired, options.want_diff, refine, secrets)
    result.facts, result.versions = dict(actual.facts), dict(actual.versions)
    desired = merged(desired, actual)
    desired, csr_requests, key_requests = generated(desired, actual)
    plan = make_plan(desired, actual)
    plan.csr_requests, plan.key_requests = csr_requests, key_requests
    if not options.check:
        save_public_keys(desired, actual.public_keys)
    report_plan(result, plan, options.want_diff, secrets, options.check)
    journal = answer.get("journal")
    if journal is not None and journal["state"] == "committed" and options.check:
        owed = ", ".join(journal["handlers"]) or "no handler"
        result.notes.append(f"would finish interrupted run {journal['run_id']}: its files are in place, its handlers never ran ({owed})")
    owes = journal is not None and journal["state"] == "committed"
    if options.check:
        if plan.problems:
            result.errors.extend(plan.problems)
            result.status = HostStatus.FAILED
            return
        result.status = HostStatus.CHANGED if plan.changed or owes else HostStatus.OK
        if journal is not None and owes:
            result.handlers = list(dict.fromkeys([*journal["handlers"], *result.handlers]))
        if plan.needs_staging and options.validate_drift:
            _validate_drift(connector, plan, options, result)
        return
    # An apply reports nothing as done until the host says it is: packages once
    # installed, files, directories and services once committed.
    planned = result.files
    result.files, result.services, result.handlers, result.packages, result.directories = [], [], [], [], []
    if plan.problems:
        result.errors.extend(plan.problems)
        result.status = HostStatus.FAILED
        return
    if not plan.changed and not answer.get("leftovers") and journal is None:
        result.status = HostStatus.OK
        return
    busy = answer.get("busy")
    if busy is not None:
        raise RemoteError(f"the host is busy: {describe_holder(busy)} (nothing was changed)")
    holder = options.holder or default_holder(options.run_id)
    expect = expected(desired, actual)
    if plan.needs_staging:
        stage = stage_request(plan, options.run_id, holder)
        stage["declared"] = list(desired.files)
        staged = call_agent(connector, stage, STAGE_TIMEOUT)
        result.packages = [name for name in plan.packages if staged.get("installed")]
        _checked(staged, "staging and validation before commit (nothing was changed)")
        save_csrs(desired, staged.get("csrs", {}))
        save_public_keys(desired, {**actual.public_keys, **staged.get("keys", {})})
        # Keys made on the host (with a CSR, or DKIM) are reported by the stage.
        result.files += [r for r in planned if r.reasons == ["key and CSR made on the host"] or r.reasons[0].startswith("DKIM key ")]
        seen = staged.get("seen_after_install", {})
        expect = [{"path": e["path"], "sha256": seen[e["path"]]} if e["path"] in seen else e for e in expect]
    request = commit_request(plan, options.run_id, holder, expect, verify_specs(plan, desired), options.keep_backups)
    committed = call_agent(connector, request, COMMIT_TIMEOUT)
    _report_commit(result, committed, planned, plan)
    _checked(committed, "commit")
    result.status = HostStatus.CHANGED if (committed.get("written") or plan.changed or owes) else HostStatus.OK
    guarded = [path for path in committed.get("written", []) if path in desired.files and desired.files[path].login_check]
    if guarded and login is not None:
        _check_login(connector, login, plan, desired, guarded, options, holder)


def default_holder(run_id: str, command: str = "provision apply") -> Holder:
    """This process as the holder of a host's lock (the runner names its command)."""
    return {"run_id": run_id, "user": getpass.getuser(), "controller": socket.gethostname(), "pid": os.getpid(), "command": command}


def describe_holder(lease: LeaseInfo) -> str:
    """Who holds a host, as the agent says it too."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.get("since", 0)))
    who = f"{lease.get('command')} by {lease.get('user')}@{lease.get('controller')}, pid {lease.get('pid')}"
    text = f"run {lease.get('run_id')} ({who}) since {since}"
    if lease.get("phase") == "staged":
        until = time.strftime("%H:%M:%S", time.localtime(lease.get("expires", 0)))
        return text + f", between its stage and its commit (if that run was stopped, the host is free again at {until})"
    return text + f", {lease.get('phase')} now"


def _validate_drift(connector: Connector, plan: Plan, options: ConvergeOptions, result: HostResult) -> None:
    """A check stages a drifted host's new files and runs apply's validators on them."""
    if plan.packages:
        result.notes.append(f"not validated: the validators need {', '.join(plan.packages)}, which apply would install first")
        return
    if not any(c.content_changed for c in plan.files):
        return
    answer = call_agent(connector, stage_request(plan, options.run_id or "check", None, check=True), STAGE_TIMEOUT)
    if not answer.get("ok"):
        result.status = HostStatus.FAILED
        failed = [check for check in answer.get("validations", []) if check["exit"] != 0]
        if failed:
            output = failed[0]["output"].strip() or f"exit {failed[0]['exit']}"
            result.errors.append(f"would fail validation ({failed[0]['what']}): {output}")
        else:
            result.errors.append(f"validation could not run: {answer.get('error', 'unknown failure')}")


def _report_commit(result: HostResult, committed: CommitAnswer, planned: list[FileReport], plan: Plan) -> None:
    """Per file, what the commit did: changed and kept, or changed and not restored."""
    by_path = {report.path: report for report in planned}
    for path in committed.get("written", []):
        result.files.append(by_path.get(path) or FileReport(path, ["changed"], False))
    for entry in committed.get("not_restored", []):
        report = by_path.get(entry["path"]) or FileReport(entry["path"], [], False)
        result.files.append(FileReport(report.path, [*report.reasons, "changed, NOT restored"], report.secret, report.diff))
    result.handlers = [h["name"] for h in committed.get("handlers", [])]
    if committed.get("ok"):
        result.services = [_service_words(s, False) for s in plan.services]
        result.directories = [d.desired.path for d in plan.directories]
    finished = committed.get("journal")
    if finished:
        ran = ", ".join(f"{h['name']} (exit {h['exit']})" for h in finished.get("handlers", [])) or "no handler"
        if finished.get("state") == "committed":
            renamed = f"; renames completed: {', '.join(finished['renamed'])}" if finished.get("renamed") else ""
            result.notes.append(f"finished interrupted run {finished.get('run_id')}: handlers {ran}{renamed}")
        else:
            result.notes.append(f"interrupted run {finished.get('run_id')} had replaced nothing: its temporary files were removed")
    if committed.get("cleaned"):
        result.notes.append(f"removed what interrupted runs left: {', '.join(committed['cleaned'])}")
    if committed.get("ok") and committed.get("written") and committed.get("backup_dir"):
        run = committed["backup_dir"].rstrip("/").rsplit("/", 1)[-1]
        result.notes.append(f"what this run replaced is kept in {committed['backup_dir']} (provision rollback {run} puts it back)")


LOGIN_PATIENCE = 10.0
"""Seconds a new login may take to work after a reload (sshd re-executes itself on SIGHUP and refuses for a moment)."""


def _login_failure(login: Login) -> str | None:
    """None once a new login works; the last failure if none did within LOGIN_PATIENCE."""
    deadline = time.monotonic() + LOGIN_PATIENCE
    while True:
        try:
            login()
            return None
        except ConnectionFailure as exc:
            if time.monotonic() >= deadline:
                return str(exc)
        time.sleep(0.5)  # polling interval while sshd comes back, bounded by the deadline


def _check_login(
    connector: Connector, login: Login, plan: Plan, desired: DesiredState, guarded: list[str], options: ConvergeOptions, holder: Holder
) -> None:
    """After a change that can lock the operator out, a new login must work; else the change is put back."""
    failure = _login_failure(login)
    if failure is None:
        return
    roles = {desired.files[path].role for path in guarded}
    request: RevertRequest = {
        "op": "revert",
        "run_id": options.run_id,
        "holder": holder,
        "paths": guarded,
        "expect": [{"path": path, "sha256": desired.files[path].sha256} for path in guarded],
        "handlers": [{"name": h.name, "command": h.command, "check": h.check} for h in plan.handlers if h.role in roles],
    }
    reverted: RevertAnswer = call_agent(connector, request, COMMIT_TIMEOUT)
    state = "the previous files were put back" if reverted.get("ok") else f"putting them back failed: {reverted.get('error')}"
    handlers = ", ".join(f"{h['name']} (exit {h['exit']})" for h in reverted.get("handlers", [])) or "none"
    still = _login_failure(login)
    after = "a new login works again" if still is None else f"a new login still fails: {still}"
    raise RemoteError(
        f"after changing {', '.join(guarded)}, a new SSH login as the run's own user failed ({failure}); "
        f"{state} and handlers run ({handlers}); {after}"
    )
