"""Runs commands on the controller itself (``connection: local``)."""

from __future__ import annotations

import subprocess

from provision.connectors.base import CommandResult, ConnectionSettings
from provision.errors import ConnectionFailure


class LocalConnector:
    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        try:
            done = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ConnectionFailure(f"command timed out after {timeout}s") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        return None
