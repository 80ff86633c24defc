"""Sends the agent and one request to a host; one call is one round trip.

The agent is the ``provision.agent`` modules an operation needs (see
``protocol.MODULES_FOR_OP``), sent as source on the standard input of one
``python3 -c BOOTSTRAP`` command, followed by the JSON request. The
bootstrap makes each one a module under its own name, so the agent's
modules import each other on the host exactly as they do in the tests.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any, cast, overload

from provision.agent.protocol import (
    MODULES_FOR_OP,
    CommitAnswer,
    CommitRequest,
    MailAnswer,
    MailRequest,
    MailTestAnswer,
    MailTestRequest,
    ProbeAnswer,
    ProbeRequest,
    ReportAnswer,
    ReportRequest,
    Request,
    StageAnswer,
    StageRequest,
)
from provision.connectors.base import CommandResult, Connector
from provision.engine import trace
from provision.engine.interrupt import STOP, StopRequested
from provision.errors import RemoteError

AGENT_DIR = Path(__file__).resolve().parent.parent / "agent"
OLDEST_HOST_PYTHON = (3, 9)
"""Debian 11's python3: the agent is written for it, and tested on each supported release (tests/lab)."""
# An older python3 answers with a refusal naming its version before it reads
# any of the agent's code (which it might not even parse), so nothing runs
# and nothing is pushed. Single quotes only: the shell's double quotes hold it.
_TOO_OLD = (
    "v=sys.version.split()[0];"
    f"sys.version_info<{OLDEST_HOST_PYTHON}and(sys.stdin.buffer.read(),print(json.dumps(dict(ok=False,error="
    "'python3 on the host is Python %s; provision needs Python "
    + ".".join(map(str, OLDEST_HOST_PYTHON))
    + " or later there (Debian 11 and later ship it)'%v,python=v))),sys.exit(0));"
)
BOOTSTRAP = (
    "import sys,types,json;M=sys.modules;" + _TOO_OLD + "[M.setdefault(p,types.ModuleType(p)) for p in('provision','provision.agent')];"
    "[exec(compile(sys.stdin.buffer.read(int(s)),n,'exec'),M.setdefault(n,types.ModuleType(n)).__dict__)"
    " for n,s in(a.rsplit(':',1) for a in sys.argv[1:])];"
    "M['provision.agent.core'].main()"
)


@cache
def module_source(name: str) -> bytes:
    return (AGENT_DIR / f"{name}.py").read_bytes()


def agent_payload(op: str) -> tuple[list[tuple[str, int]], bytes]:
    """The (module, size) pairs and the concatenated sources the operation ``op`` needs."""
    names = MODULES_FOR_OP.get(op, ("core",))
    sources = [module_source(name) for name in names]
    return [(f"provision.agent.{name}", len(source)) for name, source in zip(names, sources, strict=True)], b"".join(sources)


def agent_command(python: str, become: bool, modules: list[tuple[str, int]]) -> str:
    prefix = "sudo -n " if become else ""
    arguments = " ".join(f"{name}:{size}" for name, size in modules)
    return f'{prefix}{python} -c "{BOOTSTRAP}" {arguments}'


@overload
def call_agent(connector: Connector, request: ProbeRequest, timeout: float | None = None) -> ProbeAnswer: ...
@overload
def call_agent(connector: Connector, request: StageRequest, timeout: float | None = None) -> StageAnswer: ...
@overload
def call_agent(connector: Connector, request: CommitRequest, timeout: float | None = None) -> CommitAnswer: ...
@overload
def call_agent(connector: Connector, request: MailRequest, timeout: float | None = None) -> MailAnswer: ...
@overload
def call_agent(connector: Connector, request: ReportRequest, timeout: float | None = None) -> ReportAnswer: ...
@overload
def call_agent(connector: Connector, request: MailTestRequest, timeout: float | None = None) -> MailTestAnswer: ...


def call_agent(connector: Connector, request: Request, timeout: float | None = None) -> Any:
    """The agent's answer, as the protocol declares it for ``request``'s operation.

    Raises RemoteError when the agent did not answer with JSON (no python3,
    a crash); an answer with ``ok: false`` is returned for the caller to judge.
    """
    settings = connector.settings
    if STOP.requested():  # Ctrl-C: no new round trip (provision.engine.interrupt)
        raise StopRequested(request["op"])
    modules, sources = agent_payload(request["op"])
    command = agent_command(settings.python, settings.become, modules)
    payload = sources + json.dumps({**request, "root": settings.root}).encode()
    watch = trace.current()
    try:
        with STOP.round_trip(settings.name, request["op"]):
            if watch is None:
                result = connector.run(command, payload, timeout)
            else:
                result = _watched(watch, connector, command, payload, timeout, request)
    finally:
        if STOP.let_go():  # its connection was closed under it: not a failure of the host
            raise StopRequested(request["op"], let_go=True)
    try:
        answer = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit {result.exit_code}, no output"
        if result.exit_code == 127:
            reason = f"{settings.python} not found on the host ({reason})"
        raise RemoteError(f"the agent did not answer: {reason}") from None
    if not isinstance(answer, dict):
        raise RemoteError("the agent did not answer with a JSON object")
    # The agent builds its answer from the same declarations (provision.agent.protocol).
    return cast(dict[str, Any], answer)


def _watched(
    watch: trace.Watch, connector: Connector, command: str, payload: bytes, timeout: float | None, request: Request
) -> CommandResult:
    """One round trip, told to the host's observer before and after (with its timing)."""
    watch.count += 1
    op = str(request["op"])
    watch.observer.starting(watch.host, op, watch.count, command, request)
    started = time.monotonic()
    result: CommandResult | None = None
    try:
        result = connector.run(command, payload, timeout)
        return result
    finally:
        watch.observer.finished(
            trace.RoundTrip(
                watch.host,
                op,
                watch.count,
                round(time.monotonic() - started, 3),
                result.exit_code if result is not None else None,
                len(payload),
                len(result.stdout) + len(result.stderr) if result is not None else 0,
            )
        )
