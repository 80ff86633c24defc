"""``provision rollback RUN``: put back what one run changed, as an apply would.

Each host keeps, per run, the files that run replaced and a manifest
(``/var/backups/provision/RUN/``). A rollback reads them (one round trip),
makes them the desired state of the files that run touched (their previous
content, mode and owner; a file the run created is to be removed) and
converges to it like an apply: staged and checked by the roles' validators,
committed as a transaction with its own backups (so a rollback can be rolled
back), handlers run, services verified. Afterwards ``check`` reports the
drift from the inventory, as it should.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from provision.agent.protocol import BackupAnswer
from provision.connectors import connect
from provision.engine.agent_call import call_agent
from provision.engine.converge import PROBE_TIMEOUT, HostResult, converge
from provision.engine.hosts import ConnectorFactory, HostSession, call_hosts
from provision.engine.runner import (
    RunOptions,
    converge_options_for,
    fresh_login,
    host_result,
    host_targets,
    new_run_id,
    reporting,
    run_holder,
)
from provision.errors import RemoteError
from provision.roles.compiler import CompiledHost
from provision.state import DesiredFile, DesiredState

NO_BACKUPS = "no backups of run"


def rollback_state(compiled: CompiledHost, answer: BackupAnswer) -> DesiredState:
    """The files run RUN changed, as they were before it; with the roles' validators and handlers."""
    declared = compiled.desired
    state = DesiredState(
        host=declared.host, handlers=dict(declared.handlers), validators=list(declared.validators), roles=list(declared.roles)
    )
    contents = answer.get("contents", {})
    for entry in answer.get("entries", []):
        path = entry["path"]
        known = declared.files.get(path)
        notify = known.notify if known is not None else ()
        if not entry["existed"]:
            state.absent[path] = notify
            continue
        if path not in contents:
            continue
        state.files[path] = DesiredFile(
            path=path,
            content=base64.b64decode(contents[path]),
            mode=entry["mode"] if entry["mode"] is not None else 0o644,
            owner=entry["owner"] or "root",
            group=entry["group"] or "root",
            role=known.role if known is not None else "rollback",
            source=f"backup of run {answer.get('run_id')}",
            # A file the inventory does not declare (a key the ssl role made) is shown by hashes only.
            secret=known.secret if known is not None else True,
            validate=known.validate if known is not None else None,
            notify=notify,
            login_check=known.login_check if known is not None else False,
        )
    return state


def rollback_hosts(
    compiled: dict[str, CompiledHost],
    run_id: str,
    options: RunOptions,
    factory: ConnectorFactory = connect,
    progress: Callable[[HostResult], None] | None = None,
) -> tuple[list[HostResult], list[str]]:
    """Roll every compiled host back from the backups of ``run_id``; (results, hosts that had them)."""
    this_run = new_run_id()
    holder = run_holder(this_run, f"provision rollback {run_id}")
    had_backups: list[str] = []

    def work(session: HostSession) -> HostResult:
        entry = compiled[session.host]
        answer = call_agent(session.connector, {"op": "backup", "run_id": run_id}, PROBE_TIMEOUT)
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown failure"))
            if error.startswith(NO_BACKUPS):
                return HostResult(session.host, notes=[error])
            raise RemoteError(f"reading the backups of run {run_id}: {error}")
        had_backups.append(session.host)
        converge_options = converge_options_for(options, this_run, holder, session.host, entry)
        desired = rollback_state(entry, answer)
        return converge(session.connector, desired, converge_options, entry.secrets, fresh_login(factory, session.connector.settings))

    calls = call_hosts(
        host_targets(compiled), work, forks=options.forks, options=options.connection, factory=factory, on_done=reporting(progress)
    )
    return [host_result(call) for call in calls], had_backups
