"""An in-memory host for unit tests: no SSH, no subprocess.

It runs the real agent's operations in-process against a temporary root
folder, so the engine is tested end to end on real files while every call
is recorded (to assert the round-trip budget) and can be made to fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from provision.agent import commit as _agent_commit  # noqa: F401  (registers commit and revert, as sending it does)
from provision.agent import core as agent_core
from provision.agent import mail as _agent_mail  # noqa: F401  (registers the mail operations, as sending it does)
from provision.connectors.base import CommandResult, ConnectionSettings
from provision.engine.agent_call import parse_agent_command
from provision.errors import ConnectionFailure

Responder = Callable[[str, bytes], CommandResult | None]


class FakeConnector:
    """Answers agent commands in-process; other commands via ``responders``."""

    def __init__(self, settings: ConnectionSettings, responders: list[Responder] | None = None, unreachable: bool = False) -> None:
        self.settings = settings
        self.responders = responders or []
        self.unreachable = unreachable
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.closed = False

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        if self.unreachable:
            raise ConnectionFailure("connection refused (fake)")
        for responder in self.responders:
            answer = responder(command, stdin)
            if answer is not None:
                self.calls.append((command, None))
                return answer
        request = _agent_request(command, stdin)
        self.calls.append((command, request))
        if request is None:
            return CommandResult(127, b"", b"fake host: unknown command")
        reply = agent_core.handle(request)
        return CommandResult(0, json.dumps(reply).encode(), b"")

    def close(self) -> None:
        self.closed = True

    @property
    def operations(self) -> list[str]:
        return [str(request["op"]) if request else command for command, request in self.calls]


def _agent_request(command: str, stdin: bytes) -> dict[str, Any] | None:
    """The JSON request behind the agent's bootstrap, if this is one."""
    return parse_agent_command(command, stdin)
