"""The connector interface: how the engine reaches a host.

Deliberately small (as httpx's transports): run one command with bytes on
its standard input, and close. Uploads ride on the standard input of the
staging command, so the engine needs nothing else and each call is exactly
one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach one host, from its inventory variables."""

    name: str
    connection: str = "ssh"
    host: str = ""
    port: int = 22
    user: str | None = None
    ssh_key: str | None = None
    proxy_jump: str | None = None
    become: bool = False
    root: str = "/"
    """Manage files under this folder instead of / (tests, chroots)."""
    python: str = "python3"
    container: str | None = None
    options: dict[str, str] = field(default_factory=dict)


class Connector(Protocol):
    settings: ConnectionSettings

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        """Run a shell command on the host; one round trip."""
        ...

    def close(self) -> None: ...


class CountingConnector:
    """Wraps a connector and counts its round trips (for reports and tests)."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.settings = inner.settings
        self.round_trips = 0
        self.commands: list[str] = []

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        self.round_trips += 1
        self.commands.append(command)
        return self.inner.run(command, stdin, timeout)

    def close(self) -> None:
        self.inner.close()
