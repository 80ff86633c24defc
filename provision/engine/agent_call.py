"""Sends one request to the agent on a host; one call is one round trip.

The agent is the ``provision.agent`` modules an operation needs (see
``protocol.MODULES_FOR_OP``). The command is ``python3 -I -S -B -c
BOOTSTRAP`` (``provision.agent.bootstrap``): the agent's code is cached,
compiled, on the host under the hash of its source, so it is sent (zlib-
compressed, on the standard input before the JSON request) with the first
call on a connection, which also fills the cache when it is missing; later
calls send the hash alone, also in later runs while an OpenSSH connection
is shared (the connector keeps that note for the connection's lifetime). If
the host lost its cache meanwhile the agent says so and the call is made
once more with the sources.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast, overload

from provision.agent.protocol import (
    MODULES_FOR_OP,
    BackupAnswer,
    BackupRequest,
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
    RevertAnswer,
    RevertRequest,
    StageAnswer,
    StageRequest,
)
from provision.connectors.base import CommandResult, Connector, Remembering
from provision.engine import trace
from provision.engine.interrupt import STOP, StopRequested
from provision.errors import RemoteError

AGENT_DIR = Path(__file__).resolve().parent.parent / "agent"
PYTHON_FLAGS = "-I -S -B"
"""Isolated (no PYTHON* variables, no user site, no current folder on the path), no site packages, no bytecode writes."""
CACHE_NOTE = b"provision-agent-cache: "
OLDEST_HOST_PYTHON = (3, 9)
"""Debian 11's python3: the agent is written for it, and tested on each supported release (tests/lab)."""
# An older python3 answers with a refusal naming its version before it reads
# any of the agent's code (which it might not even parse), so nothing runs
# and nothing is pushed.
_TOO_OLD = (
    "v=sys.version.split()[0];"
    f"sys.version_info<{OLDEST_HOST_PYTHON}and(sys.stdin.buffer.read(),print(json.dumps(dict(ok=False,error="
    "'python3 on the host is Python %s; provision needs Python "
    + ".".join(map(str, OLDEST_HOST_PYTHON))
    + " or later there (Debian 11 and later ship it)'%v,python=v))),sys.exit(0));"
)


@cache
def module_source(name: str) -> bytes:
    return (AGENT_DIR / f"{name}.py").read_bytes()


@cache
def bootstrap_source() -> str:
    """The bootstrap as sent: without its docstring and comments (it travels on every command line)."""
    text = (AGENT_DIR / "bootstrap.py").read_text()
    body = text.split('"""', 2)[2]
    lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AgentPayload:
    """The modules an operation needs, their hash, and their compressed sources."""

    modules: tuple[tuple[str, int], ...]
    digest: str
    compressed: bytes

    @property
    def manifest(self) -> str:
        return " ".join(f"{name}:{size}" for name, size in self.modules)


@cache
def agent_payload(op: str) -> AgentPayload:
    names = MODULES_FOR_OP.get(op, ("core",))
    sources = [module_source(name) for name in names]
    modules = tuple((f"provision.agent.{name}", len(source)) for name, source in zip(names, sources, strict=True))
    manifest = " ".join(f"{name}:{size}" for name, size in modules)
    joined = b"".join(sources)
    return AgentPayload(modules, hashlib.sha256(manifest.encode() + joined).hexdigest(), zlib.compress(joined, 6))


@cache
def program() -> str:
    """The ``-c`` program: an older python3's refusal first (the bootstrap's own syntax may be new to it), then the bootstrap."""
    return "import sys,json;" + _TOO_OLD + f"exec({bootstrap_source()!r})"


def agent_command(python: str, become: bool, root: str, payload: AgentPayload, inline: bool) -> str:
    prefix = "sudo -n " if become else ""
    sent = len(payload.compressed) if inline else 0
    arguments = f"{payload.digest} {shlex.quote(root)} {sent} {payload.manifest}"
    return f"{prefix}{python} {PYTHON_FLAGS} -c {shlex.quote(program())} {arguments}"


def parse_agent_command(command: str, stdin: bytes) -> dict[str, Any] | None:
    """The JSON request inside an agent call, or None if ``command`` is not one (for the test fake)."""
    if shlex.quote(program()) not in command:
        return None
    arguments = shlex.split(command.split(shlex.quote(program()), 1)[1])
    request: dict[str, Any] = json.loads(stdin[int(arguments[2]) :].decode())
    return request


class _Notes:
    """Notes for connectors that keep none themselves (a bare connector in a test): per object, one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: weakref.WeakKeyDictionary[Connector, set[str]] = weakref.WeakKeyDictionary()

    def remembers(self, connector: Connector, key: str) -> bool:
        if isinstance(connector, Remembering):
            return connector.remembers(key)
        with self._lock:
            return key in self._notes.get(connector, set())

    def remember(self, connector: Connector, key: str, present: bool) -> None:
        if isinstance(connector, Remembering):
            connector.remember(key, present)
            return
        with self._lock:
            notes = self._notes.setdefault(connector, set())
            (notes.add if present else notes.discard)(key)


NOTES = _Notes()


@overload
def call_agent(connector: Connector, request: ProbeRequest, timeout: float | None = None) -> ProbeAnswer: ...
@overload
def call_agent(connector: Connector, request: StageRequest, timeout: float | None = None) -> StageAnswer: ...
@overload
def call_agent(connector: Connector, request: CommitRequest, timeout: float | None = None) -> CommitAnswer: ...
@overload
def call_agent(connector: Connector, request: RevertRequest, timeout: float | None = None) -> RevertAnswer: ...
@overload
def call_agent(connector: Connector, request: BackupRequest, timeout: float | None = None) -> BackupAnswer: ...
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
    payload = agent_payload(request["op"])
    body = json.dumps({**request, "root": settings.root}).encode()
    note = f"agent-{payload.digest[:16]}"
    inline = not NOTES.remembers(connector, note)
    watch = trace.current()
    try:
        with STOP.round_trip(settings.name, request["op"]):
            result = _send(connector, payload, body, inline, timeout, watch, request)
            if not inline and _agent_missing(result):
                inline = True  # the host lost its cache since the last call: send the sources once more
                result = _send(connector, payload, body, inline, timeout, watch, request)
    finally:
        if STOP.let_go():  # its connection was closed under it: not a failure of the host
            raise StopRequested(request["op"], let_go=True)
    if inline:
        NOTES.remember(connector, note, CACHE_NOTE + b"ok\n" in result.stderr)
    try:
        answer = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        errors = b"".join(line for line in result.stderr.splitlines(keepends=True) if not line.startswith(CACHE_NOTE))
        detail = (errors or result.stdout).decode("utf-8", "replace").strip().splitlines()
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
    watch.observer.starting(watch.host, op, watch.count, trace.masked(command, watch.secrets), trace.masked(request, watch.secrets))
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


def _send(
    connector: Connector,
    payload: AgentPayload,
    body: bytes,
    inline: bool,
    timeout: float | None,
    watch: trace.Watch | None,
    request: Request,
) -> CommandResult:
    settings = connector.settings
    command = agent_command(settings.python, settings.become, settings.root, payload, inline)
    stdin = (payload.compressed if inline else b"") + body
    if watch is None:
        return connector.run(command, stdin, timeout)
    return _watched(watch, connector, command, stdin, timeout, request)


def _agent_missing(result: CommandResult) -> bool:
    try:
        answer = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(answer, dict) and answer.get("agent_missing") is True
