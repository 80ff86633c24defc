"""Converging one host: probe → diff → stage and validate → commit.

One round trip for a host with nothing to change (the probe), three at most
with changes (probe; upload + validate in staging; commit + handlers), on
one connection. The pure parts (diff, rendering) happen on the controller.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from provision.agent.protocol import (
    CommitAnswer,
    CommitRequest,
    CsrSpec,
    FileStat,
    KeySpec,
    ProbeAnswer,
    ProbeRequest,
    StageAnswer,
    StageRequest,
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
from provision.state import ActualState, DesiredState, FileFact, Plan, ServiceFact

PROBE_TIMEOUT = 120.0
STAGE_TIMEOUT = 3600.0  # package installs from a mirror can be slow
COMMIT_TIMEOUT = 900.0


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
    extra_files, public_keys = generator_probe(desired)
    return {
        "op": "probe",
        "files": [
            {
                "path": path,
                "sha256": "" if provisional else entry.sha256,
                "want_content": want_diff and not entry.secret,
                "always_content": entry.merge is not None,
            }
            for path, entry in desired.files.items()
        ],
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


def generator_probe(desired: DesiredState) -> tuple[list[str], list[str]]:
    """What the generators need to know: current files and public keys."""
    if not desired.generators:
        return [], []
    from provision.roles import certificates, dkim

    contents: list[str] = []
    keys: list[str] = []
    for kind, data in desired.generators:
        more_contents, more_keys = (dkim.probe_paths if kind == "dkim_keys" else certificates.probe_paths)(data)
        contents += more_contents
        keys += more_keys
    return contents, keys


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


def report_plan(result: HostResult, plan: Plan, want_diff: bool, secrets: list[str]) -> None:
    for change in plan.files:
        entry = change.desired
        diff = file_diff(change.actual, entry, secrets) if want_diff else None
        result.files.append(FileReport(change.path, list(change.reasons), entry.secret, diff))
    result.directories = [d.desired.path for d in plan.directories]
    result.packages = list(plan.packages)
    result.services = [
        f"{s.desired.name}: "
        + ", ".join(a for a, on in (("start", s.start), ("stop", s.stop)) if on)
        + (f"{', ' if s.start or s.stop else ''}{'enable' if s.enable else 'disable'}" if s.enable is not None else "")
        for s in plan.services
    ]
    result.problems = list(plan.problems)
    result.files += [FileReport(c["key_path"], ["key and CSR made on the host"], True) for c in plan.csr_requests]
    result.files += [FileReport(k["path"], [f"DKIM key {k['name']} made on the host"], True) for k in plan.key_requests]


def stage_request(plan: Plan, run_id: str) -> StageRequest:
    return {
        "op": "stage",
        "run_id": run_id,
        "packages": plan.packages,
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
        "csr": plan.csr_requests,
        "keys": plan.key_requests,
    }


def commit_request(plan: Plan, run_id: str) -> CommitRequest:
    return {
        "op": "commit",
        "run_id": run_id,
        "directories": [
            {"path": d.desired.path, "mode": d.desired.mode, "owner": d.desired.owner, "group": d.desired.group} for d in plan.directories
        ],
        "files": [
            {
                "path": c.path,
                "mode": c.desired.mode,
                "owner": c.desired.owner,
                "group": c.desired.group,
                "content_changed": c.content_changed,
                "sha256": c.desired.sha256,
            }
            for c in plan.files
        ],
        "handlers": [{"name": h.name, "command": h.command, "check": h.check} for h in plan.handlers],
        "services": [
            {"name": s.desired.name, "start": s.start, "stop": s.stop, "enable": s.enable is True, "disable": s.enable is False}
            for s in plan.services
        ],
    }


def probe_host(
    connector: Connector, desired: DesiredState, want_diff: bool, refine: Refine | None, secrets: list[str]
) -> tuple[DesiredState, ActualState, list[str]]:
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
    return desired, parse_probe(desired.host, answer), secrets


def converge(
    connector: Connector,
    desired: DesiredState,
    *,
    check: bool,
    want_diff: bool,
    run_id: str,
    secrets: list[str],
    refine: Refine | None = None,
) -> HostResult:
    """Bring one host to ``desired`` (or, with ``check``, only report drift).
    ``refine`` compiles the host again with its facts (see ``probe_host``)."""
    result = HostResult(host=desired.host)
    started = time.monotonic()
    try:
        desired, actual, secrets = probe_host(connector, desired, want_diff, refine, secrets)
        result.facts, result.versions = dict(actual.facts), dict(actual.versions)
        desired = merged(desired, actual)
        desired, csr_requests, key_requests = generated(desired, actual)
        plan = make_plan(desired, actual)
        plan.csr_requests, plan.key_requests = csr_requests, key_requests
        if not check:
            save_public_keys(desired, actual.public_keys)
        report_plan(result, plan, want_diff, secrets)
        if plan.problems:
            result.errors.extend(plan.problems)
        if check or not plan.changed or plan.problems:
            result.status = HostStatus.FAILED if plan.problems else (HostStatus.CHANGED if plan.changed else HostStatus.OK)
            return result
        if plan.needs_staging:
            staged = call_agent(connector, stage_request(plan, run_id), STAGE_TIMEOUT)
            _checked(staged, "staging and validation before commit (nothing was changed)")
            save_csrs(desired, staged.get("csrs", {}))
            save_public_keys(desired, {**actual.public_keys, **staged.get("keys", {})})
        committed = call_agent(connector, commit_request(plan, run_id), COMMIT_TIMEOUT)
        result.handlers = [h["name"] for h in committed.get("handlers", [])]
        _checked(committed, "commit")
        result.status = HostStatus.CHANGED
    except ConnectionFailure as exc:
        result.status = HostStatus.UNREACHABLE
        result.errors.append(str(exc))
    except VersionRefused as exc:
        result.status, result.refused = HostStatus.FAILED, True
        result.errors.append(str(exc))
    except ProvisionError as exc:
        result.status = HostStatus.FAILED
        result.errors.append(str(exc))
    except RemoteError as exc:
        result.status = HostStatus.FAILED
        # A validator or handler may echo a config line that holds a secret.
        result.errors.append(mask(str(exc), secrets))
    finally:
        result.seconds = round(time.monotonic() - started, 3)
    return result
