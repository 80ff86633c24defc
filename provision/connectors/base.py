"""The connector interface: how the engine reaches a host.

Deliberately small (as httpx's transports): run one command with bytes on
its standard input, and close. Uploads ride on the standard input of the
staging command, so the engine needs nothing else and each call is exactly
one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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
    port: int | None = None
    """None: ssh_config's, else 22."""
    user: str | None = None
    ssh_key: str | None = None
    proxy_jump: str | None = None
    become: bool = False
    root: str = "/"
    """Manage files under this folder instead of / (tests, chroots)."""
    python: str = "python3"
    container: str | None = None
    ssh_config: str | None = None
    """The user's ssh_config for OpenSSH (default ~/.ssh/config)."""
    control_persist: int = 60
    """Seconds an OpenSSH connection stays open after its last command; 0: not shared."""
    options: dict[str, str] = field(default_factory=dict)


class Connector(Protocol):
    settings: ConnectionSettings

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        """Run a shell command on the host; one round trip."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Remembering(Protocol):
    """A connector that can keep a note for as long as its connection lives, across runs
    (OpenSSH's shared connections): what the engine already did on the host over it."""

    def remembers(self, key: str) -> bool: ...

    def remember(self, key: str, present: bool) -> None: ...


class CountingConnector:
    """Wraps a connector and counts its round trips (for reports and tests)."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.settings = inner.settings
        self.round_trips = 0
        self.commands: list[str] = []
        self._notes: set[str] = set()

    def remembers(self, key: str) -> bool:
        """The inner connector's notes if it keeps any, else this connection's own (one run)."""
        if isinstance(self.inner, Remembering):
            return self.inner.remembers(key)
        return key in self._notes

    def remember(self, key: str, present: bool) -> None:
        if isinstance(self.inner, Remembering):
            self.inner.remember(key, present)
        (self._notes.add if present else self._notes.discard)(key)

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        self.round_trips += 1
        self.commands.append(command)
        return self.inner.run(command, stdin, timeout)

    def close(self) -> None:
        self.inner.close()
