"""Two fake hosts (alpha, beta) rooted in temp folders, converged through the
real engine and the real agent (provision.testing's fake connector)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from provision.connectors.base import ConnectionSettings
from provision.engine.converge import HostResult
from provision.engine.runner import RunOptions, run_hosts
from provision.roles.compiler import Project, compile_hosts
from provision.testing.fake import FakeConnector
from tests.fixtures import svc_project

ConnectorClass = Callable[[ConnectionSettings], FakeConnector]


class FakeHosts:
    def __init__(self, base: Path, make_tree: Callable[[dict[str, str]], Path]) -> None:
        self.roots = {"alpha": base / "alpha", "beta": base / "beta"}
        for root in self.roots.values():
            root.mkdir()
        self.log = base / "handler.log"
        self.project_dir = make_tree(svc_project(str(self.roots["alpha"]), str(self.roots["beta"]), str(self.log)))
        self.connectors: list[FakeConnector] = []
        self.unreachable: set[str] = set()
        self.connector_class: ConnectorClass = FakeConnector

    def factory(self, settings: ConnectionSettings) -> FakeConnector:
        connector = self.connector_class(settings)
        connector.unreachable = settings.name in self.unreachable
        self.connectors.append(connector)
        return connector

    def run(self, check: bool = False, diff: bool = False, limit: str | None = None, **extra_vars: Any) -> dict[str, HostResult]:
        self.connectors = []
        project = Project.load(self.project_dir)
        for name, value in extra_vars.items():
            project.inventory.groups["all"].vars[name] = value
        compiled = compile_hosts(project, project.select(limit), None)
        results = run_hosts(compiled, RunOptions(check=check, diff=diff), factory=self.factory)
        return {r.host: r for r in results}

    def file(self, host: str, path: str) -> Path:
        return self.roots[host] / path.lstrip("/")

    def handler_runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0
