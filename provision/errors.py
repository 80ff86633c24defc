"""Errors a user can cause, each able to say where it happened.

Everything raised for a user's mistake derives from :class:`ProvisionError`;
the CLI prints it as one line (``file:line:column: message``) and exits 1,
so no traceback ever reaches a user for a mistake of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a user's file; line and column are 1-based."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class ProvisionError(Exception):
    """A mistake in the user's input, reported without a traceback."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __reduce__(self) -> tuple[type[ProvisionError], tuple[str, Location | None]]:
        # Compiling runs in worker processes for large fleets: the location must survive pickling.
        return (type(self), (self.message, self.location))

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class YamlError(ProvisionError):
    """A file that is not valid YAML."""


class InventoryError(ProvisionError):
    """An inventory, group_vars/host_vars or site.yml that makes no sense."""


class RoleError(ProvisionError):
    """A role that cannot be found or whose definition is wrong."""


class VariableError(ProvisionError):
    """A variable with a wrong type, an unknown name or an unsafe value."""


class TemplateError(ProvisionError):
    """A template that fails to render (undefined variable, syntax error)."""


class PatternError(ProvisionError):
    """A host pattern that matches nothing or cannot be parsed."""


class ConnectionFailure(Exception):
    """A host that cannot be reached; the host is reported unreachable."""


class HostKeyError(ConnectionFailure):
    """A host key that is unknown or has changed; nothing is pushed."""


class RemoteError(Exception):
    """The agent on a host answered with a failure (validation, handler...)."""
