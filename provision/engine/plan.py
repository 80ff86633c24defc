"""The diff between desired and actual state: a pure function of plain data."""

from __future__ import annotations

from provision.state import (
    ActualState,
    DesiredState,
    DirectoryChange,
    FileChange,
    FileFact,
    Plan,
    ServiceChange,
)


def _file_reasons(desired_mode: int, owner: str, group: str, sha: str, fact: FileFact) -> tuple[str, ...]:
    if not fact.exists:
        return ("create",)
    reasons = []
    if fact.sha256 != sha:
        reasons.append("content")
    if fact.mode != desired_mode:
        reasons.append("mode")
    if fact.owner != owner:
        reasons.append("owner")
    if fact.group != group:
        reasons.append("group")
    return tuple(reasons)


def plan(desired: DesiredState, actual: ActualState) -> Plan:
    """What must change on the host so that it matches ``desired``."""
    result = Plan(host=desired.host)
    for path, directory in desired.directories.items():
        fact = actual.directories.get(path, FileFact(path, exists=False))
        if fact.exists and fact.is_file:
            result.problems.append(f"{path} is a file where a directory is wanted")
            continue
        if directory.mode is None:
            reasons: tuple[str, ...] = () if fact.exists else ("create",)
        else:
            reasons = _file_reasons(directory.mode, directory.owner, directory.group, "", fact)
            reasons = tuple(r for r in reasons if r != "content")
        if reasons:
            result.directories.append(DirectoryChange(directory, reasons))

    notified: set[str] = set()
    for path, wanted in desired.files.items():
        fact = actual.files.get(path, FileFact(path, exists=False))
        if fact.exists and not fact.is_file:
            result.problems.append(f"{path} is not a regular file")
            continue
        reasons = _file_reasons(wanted.mode, wanted.owner, wanted.group, wanted.sha256, fact)
        if not reasons:
            continue
        if wanted.change_note and ("content" in reasons or "create" in reasons):
            reasons += (wanted.change_note,)
        change = FileChange(wanted, fact, reasons)
        result.files.append(change)
        # A mode or owner fix needs no reload: only new content does.
        if change.content_changed:
            notified.update(wanted.notify)

    for path, notify in desired.absent.items():
        fact = actual.files.get(path, FileFact(path, exists=False))
        if fact.exists and not fact.is_file:
            result.problems.append(f"{path} is not a regular file")
        elif fact.exists:
            result.removals.append(path)
            notified.update(notify)

    result.packages = [name for name in desired.packages if not actual.packages.get(name)]

    for service in desired.services:
        service_fact = actual.services.get(service.name)
        active = service_fact.active if service_fact else False
        enabled = service_fact.enabled if service_fact else None
        start = service.state == "started" and not active
        stop = service.state == "stopped" and active
        # Unknown (not installed yet: this run's packages or handlers bring it): enabled once it exists.
        unknown_but_wanted = enabled is None and service.enabled
        enable = service.enabled if unknown_but_wanted or (enabled is not None and enabled != service.enabled) else None
        if start or stop or enable is not None:
            result.services.append(ServiceChange(service, start, stop, enable))

    # A restart makes the reload of the same service pointless (first converge: both notified).
    superseded = {other for name in notified if name in desired.handlers for other in desired.handlers[name].supersedes}
    result.handlers = [h for name, h in desired.handlers.items() if name in notified and name not in superseded]
    changed_paths = {c.path for c in result.files if c.content_changed} | set(result.removals)
    result.validators = [v for v in desired.validators if changed_paths.intersection(v.files)]
    return result
