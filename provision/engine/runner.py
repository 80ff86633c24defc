"""Runs the engine on many hosts: up to ``forks`` at once, in ``serial`` batches.

Every selected host is compiled (``provision.roles.compiler.compile_hosts``)
before any is contacted, so a mistake stops the run with nothing pushed.
One failing or unreachable host never stops the others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from provision.agent.protocol import Holder
from provision.connectors import connect
from provision.connectors.base import ConnectionSettings
from provision.engine.converge import KEEP_BACKUPS, ConvergeOptions, HostResult, Login, converge, default_holder
from provision.engine.hosts import ConnectionOptions, ConnectorFactory, HostCall, HostSession, HostTarget, call_hosts
from provision.errors import ProvisionError
from provision.roles.compiler import CompiledHost

Progress = Callable[[HostResult], None]


def new_run_id() -> str:
    # Sortable by time, so pruning old backups keeps the newest (the host breaks ties within a second).
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@dataclass
class RunOptions:
    check: bool = False
    diff: bool = False
    forks: int = 10
    serial: int = 0
    """Converge in batches of this many hosts (0: all at once)."""
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    run_id: str = field(default_factory=new_run_id)
    """Names the hosts' backups (/var/backups/provision/RUN) and the run's line in the run log."""
    command: str = "provision apply"
    """Said to another run that finds a host held by this one."""


def run_hosts(
    compiled: dict[str, CompiledHost],
    options: RunOptions,
    factory: ConnectorFactory = connect,
    progress: Progress | None = None,
) -> list[HostResult]:
    """Converge (or check) every compiled host; results in the given order, progress as hosts finish."""
    run_id = options.run_id
    holder = run_holder(run_id, options.command)

    def work(session: HostSession) -> HostResult:
        entry = compiled[session.host]
        settings = session.connector.settings
        converge_options = converge_options_for(options, run_id, holder, session.host, entry)
        return converge(session.connector, entry.desired, converge_options, entry.secrets, fresh_login(factory, settings), entry.refine)

    calls = call_hosts(
        host_targets(compiled),
        work,
        forks=options.forks,
        options=options.connection,
        factory=factory,
        batch_size=options.serial,
        on_done=reporting(progress),
    )
    return [host_result(call) for call in calls]


def converge_options_for(options: RunOptions, run_id: str, holder: Holder, host: str, entry: CompiledHost) -> ConvergeOptions:
    """What one host's converge is told of the run (apply, check and rollback alike)."""
    return ConvergeOptions(
        check=options.check, want_diff=options.diff, run_id=run_id, holder=holder, keep_backups=keep_backups(host, entry.variables)
    )


def host_targets(compiled: dict[str, CompiledHost]) -> list[HostTarget]:
    """The compiled hosts as call_hosts takes them: connection variables, where each was set, secrets -v must not show."""
    return [HostTarget(host, entry.variables, entry.locations, entry.secrets) for host, entry in compiled.items()]


def reporting(progress: Progress | None) -> Callable[[HostCall[HostResult]], None] | None:
    """call_hosts' on_done: each host's result to ``progress`` as it finishes."""
    if progress is None:
        return None
    return lambda call: progress(host_result(call))


def run_holder(run_id: str, command: str) -> Holder:
    return default_holder(run_id, command)


def keep_backups(host: str, variables: dict[str, Any]) -> int:
    """``provision_keep_backups``: the runs whose backups each host keeps."""
    value = variables.get("provision_keep_backups", KEEP_BACKUPS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProvisionError(f"host {host}: provision_keep_backups must be a whole number of runs, at least 1, got {value!r}")
    return value


def fresh_login(factory: ConnectorFactory, settings: ConnectionSettings) -> Login:
    """A new connection (a new SSH login, not the open one) that runs one command, for after an sshd change."""

    # Never over a shared (ControlMaster) connection: that one is already logged in.
    fresh = replace(settings, control_persist=0)

    def login() -> None:
        connector = factory(fresh)
        try:
            connector.run("true", b"", 30.0)
        finally:
            connector.close()

    return login


def host_result(call: HostCall[HostResult]) -> HostResult:
    """The converge's own result, or one saying why there is none (unreachable, failed)."""
    result = call.value if call.value is not None else HostResult(host=call.host, status=call.status, errors=list(call.errors))
    result.round_trips, result.seconds = call.round_trips, call.seconds
    return result
