"""Sends the agent and one request to a host; one call is one round trip."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from provision.connectors.base import Connector
from provision.errors import RemoteError

BOOTSTRAP = "import sys;n=int(sys.argv[1]);exec(compile(sys.stdin.buffer.read(n),'provision-agent','exec'))"


@lru_cache(maxsize=1)
def agent_source() -> bytes:
    return (Path(__file__).parent.parent / "agent" / "core.py").read_bytes()


def agent_command(python: str, become: bool, size: int) -> str:
    prefix = "sudo -n " if become else ""
    return f'{prefix}{python} -c "{BOOTSTRAP}" {size}'


def call_agent(connector: Connector, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    source = agent_source()
    settings = connector.settings
    command = agent_command(settings.python, settings.become, len(source))
    payload = source + json.dumps({**request, "root": settings.root}).encode()
    result = connector.run(command, payload, timeout)
    try:
        answer: dict[str, Any] = json.loads(result.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit {result.exit_code}, no output"
        if result.exit_code == 127:
            reason = f"{settings.python} not found on the host ({reason})"
        raise RemoteError(f"the agent did not answer: {reason}") from None
    return answer
