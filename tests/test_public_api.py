"""Pins the public API so that a change to it is a deliberate one (as httpx does)."""

from __future__ import annotations

import provision
from provision.connectors import Connector, CountingConnector
from provision.connectors.base import CommandResult, ConnectionSettings


def test_public_names() -> None:
    assert sorted(provision.__all__) == ["CompiledHost", "Project", "ProvisionError", "RunOptions", "__version__", "run_hosts"]
    assert provision.__version__ == "0.1.0"
    for name in provision.__all__:
        assert getattr(provision, name) is not None


def test_connector_interface_is_small() -> None:
    members = {name for name in vars(Connector) if not name.startswith("_")}
    assert members == {"run", "close"}


def test_counting_connector_counts_round_trips() -> None:
    class Echo:
        settings = ConnectionSettings(name="h")

        def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
            return CommandResult(0, stdin, b"")

        def close(self) -> None:
            return None

    counting = CountingConnector(Echo())
    assert counting.run("cat", b"x").stdout == b"x"
    counting.run("cat")
    assert counting.round_trips == 2 and counting.commands == ["cat", "cat"]
