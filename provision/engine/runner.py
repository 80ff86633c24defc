"""Runs the engine on many hosts: up to ``forks`` at once, in ``serial`` batches.

Every selected host is compiled before any is contacted (a mistake stops
the run with nothing pushed). One failing or unreachable host never stops
the others.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from provision.connectors import CountingConnector, connect, settings_from_vars
from provision.connectors.base import ConnectionSettings, Connector
from provision.engine.converge import HostResult, converge
from provision.errors import ConnectionFailure
from provision.roles.compiler import CompiledHost, Project

ConnectorFactory = Callable[[ConnectionSettings], Connector]
Progress = Callable[[HostResult], None]


@dataclass
class RunOptions:
    check: bool = False
    diff: bool = False
    forks: int = 10
    serial: int = 0
    tags: set[str] | None = None
    connection_options: dict[str, str] | None = None


def new_run_id() -> str:
    # Sortable by time, so pruning old backups keeps the newest.
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


# Below this many hosts a worker process costs more than it saves.
PARALLEL_COMPILE_MIN_HOSTS = 200
_CHUNK = 50
_forked: tuple[Project, set[str] | None] | None = None


def compile_hosts(project: Project, hosts: list[str], tags: set[str] | None) -> dict[str, CompiledHost]:
    """Every host's desired state, in ``hosts`` order; the first mistake raises.

    Compiling is pure CPU work, so a large fleet is compiled by one forked
    worker per core (the loaded project is inherited, not re-read).
    """
    workers = min(os.cpu_count() or 1, len(hosts) // _CHUNK)
    if len(hosts) < PARALLEL_COMPILE_MIN_HOSTS or workers < 2:
        return {host: project.compile(host, tags) for host in hosts}
    global _forked
    _forked = (project, tags)
    try:
        chunks = [hosts[start : start + _CHUNK] for start in range(0, len(hosts), _CHUNK)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            compiled: dict[str, CompiledHost] = {}
            for part in pool.map(_compile_chunk, chunks):
                compiled.update(part)
            return compiled
    finally:
        _forked = None


def _compile_chunk(hosts: list[str]) -> dict[str, CompiledHost]:
    assert _forked is not None, "only called in a forked worker"
    project, tags = _forked
    return {host: project.compile(host, tags) for host in hosts}


def run_one(compiled: CompiledHost, options: RunOptions, run_id: str, factory: ConnectorFactory) -> HostResult:
    host = compiled.desired.host
    started = time.monotonic()
    try:
        settings = settings_from_vars(host, compiled.variables, options.connection_options)
        connector = CountingConnector(factory(settings))
    except ConnectionFailure as exc:
        return HostResult(host=host, status="unreachable", errors=[str(exc)], seconds=round(time.monotonic() - started, 3))
    try:
        result = converge(connector, compiled.desired, check=options.check, want_diff=options.diff, run_id=run_id, secrets=compiled.secrets)
    finally:
        connector.close()
    result.round_trips = connector.round_trips
    result.seconds = round(time.monotonic() - started, 3)
    return result


def run_hosts(
    compiled: dict[str, CompiledHost],
    options: RunOptions,
    factory: ConnectorFactory = connect,
    progress: Progress | None = None,
) -> list[HostResult]:
    hosts = list(compiled)
    batch_size = options.serial or len(hosts) or 1
    run_id = new_run_id()
    results: dict[str, HostResult] = {}
    for start in range(0, len(hosts), batch_size):
        batch = hosts[start : start + batch_size]
        with ThreadPoolExecutor(max_workers=max(1, min(options.forks, len(batch)))) as pool:
            futures = {pool.submit(run_one, compiled[h], options, run_id, factory): h for h in batch}
            for future, host in futures.items():
                try:
                    result = future.result()
                except Exception as exc:
                    result = HostResult(host=host, status="failed", errors=[f"internal error: {type(exc).__name__}: {exc}"])
                results[host] = result
                if progress is not None:
                    progress(result)
    return [results[h] for h in hosts]
