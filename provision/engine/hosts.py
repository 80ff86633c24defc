"""One way to talk to hosts: connect, run the work, classify the outcome, close.

Every command that reaches hosts (apply/check, report, mail, onboarding)
goes through :func:`call_hosts`: up to ``forks`` hosts at once, optionally
in batches, each host on one connection that is always closed, a failure
on one host never stopping the others, and each outcome classified the
same way (a connection that cannot be made or is lost: unreachable; the
agent or the user's input refusing: failed; anything else: failed as an
internal error, with its type named).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from provision.connectors import ALIASES, CountingConnector, connect, settings_from_vars
from provision.connectors.base import ConnectionSettings, Connector
from provision.engine.interrupt import NOT_STARTED, STOP, StopRequested
from provision.engine.trace import Observer, watching
from provision.errors import ConnectionFailure, Location, ProvisionError, RemoteError

T = TypeVar("T")
ConnectorFactory = Callable[[ConnectionSettings], Connector]


class HostStatus(StrEnum):
    """A host's outcome, as every command reports it (JSON holds the value)."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    INTERRUPTED = "interrupted"
    """Ctrl-C stopped it; its errors say where it stopped (provision.engine.interrupt)."""
    SKIPPED = "skipped"
    """Nothing there to act on (``provision mail`` on a host without a mail system)."""

    @property
    def is_error(self) -> bool:
        return self in (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.INTERRUPTED)


@dataclass(frozen=True)
class ConnectionOptions:
    """What the command line adds to every host's connection settings."""

    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    observer: Observer | None = field(default=None, compare=False)
    """Told of every round trip (``-v``, progress lines); see ``provision.engine.trace``."""

    def as_settings(self) -> dict[str, str]:
        return {
            **({"known_hosts": self.known_hosts} if self.known_hosts else {}),
            **({"accept_new_host_keys": "yes"} if self.accept_new_host_keys else {}),
        }


@dataclass(frozen=True)
class HostTarget:
    host: str
    variables: Mapping[str, Any]
    """The host's merged variables: its connection settings come from them."""
    locations: Mapping[str, Location | None] | None = None
    """Where each variable was set, for an error about one of them."""
    secrets: Sequence[str] = ()
    """Values that -v/-vv never shows."""


@dataclass
class HostSession:
    """One host's open connection, for the work done on it."""

    host: str
    connector: CountingConnector


@dataclass
class HostCall(Generic[T]):
    """The outcome of the work on one host: its value, or why there is none."""

    host: str
    status: HostStatus = HostStatus.OK
    value: T | None = None
    errors: list[str] = field(default_factory=list)
    round_trips: int = 0
    seconds: float = 0.0
    exception: Exception | None = None
    """What stopped the work, for a caller that says more about one kind (a host key, say)."""


def call_host(target: HostTarget, work: Callable[[HostSession], T], options: ConnectionOptions, factory: ConnectorFactory) -> HostCall[T]:
    started = time.monotonic()
    call: HostCall[T] = HostCall(target.host)
    if STOP.requested():  # Ctrl-C: no new host starts
        call.status, call.errors = HostStatus.INTERRUPTED, [NOT_STARTED["probe"]]
        return call
    connector: CountingConnector | None = None
    try:
        settings = settings_from_vars(target.host, dict(target.variables), options.as_settings())
        connector = CountingConnector(factory(settings))
        STOP.opened(connector)
        with watching(target.host, options.observer, target.secrets):
            call.value = work(HostSession(target.host, connector))
    except StopRequested as exc:
        call.status, call.errors, call.exception = HostStatus.INTERRUPTED, [str(exc)], exc
    except ConnectionFailure as exc:
        if STOP.let_go():  # closed by Ctrl-C while it connected
            call.status, call.errors = HostStatus.INTERRUPTED, [NOT_STARTED["probe"]]
        else:
            call.status, call.errors, call.exception = HostStatus.UNREACHABLE, [str(exc)], exc
    except (RemoteError, ProvisionError) as exc:
        call.status, call.errors, call.exception = HostStatus.FAILED, [str(exc)], exc
    except Exception as exc:  # one host's surprise must not hide the others
        call.status, call.errors, call.exception = HostStatus.FAILED, [f"internal error: {type(exc).__name__}: {exc}"], exc
    finally:
        if connector is not None:
            STOP.closed(connector)
            call.round_trips = connector.round_trips
            # Closing a connection that already broke must not change the outcome.
            with contextlib.suppress(Exception):
                connector.close()
    call.seconds = round(time.monotonic() - started, 3)
    return call


def check_targets(targets: Sequence[HostTarget], options: ConnectionOptions) -> None:
    """Mistakes in how hosts are to be reached are input errors, found before any host is contacted.

    A port that is not a number, an unknown connection type, or a private
    key file that does not exist or cannot be read stops the command with
    one line (exit 1), as a wrong variable does, instead of N hosts each
    reported unreachable.
    """
    for target in targets:
        settings = settings_from_vars(target.host, dict(target.variables), options.as_settings())
        if settings.connection in ("ssh", "paramiko") and settings.ssh_key:
            key = Path(settings.ssh_key).expanduser()
            where = _variable_location(target, ("ssh_key", *ALIASES["ssh_key"]))
            if not key.is_file():
                raise ProvisionError(f"host {target.host}: the SSH key file {key} does not exist", where)
            if not os.access(key, os.R_OK):
                raise ProvisionError(f"host {target.host}: the SSH key file {key} cannot be read (permissions)", where)


def _variable_location(target: HostTarget, names: Sequence[str]) -> Location | None:
    for name in names:
        if target.locations is not None and name in target.variables:
            return target.locations.get(name)
    return None


def call_hosts(
    targets: Sequence[HostTarget],
    work: Callable[[HostSession], T],
    *,
    forks: int = 10,
    options: ConnectionOptions | None = None,
    factory: ConnectorFactory = connect,
    batch_size: int = 0,
    on_done: Callable[[HostCall[T]], None] | None = None,
) -> list[HostCall[T]]:
    """Run ``work`` on every target; results in ``targets`` order, ``on_done`` in completion order.

    ``batch_size`` (``--serial``): a batch starts only when the one before it has finished.
    The workers are daemon threads: after Ctrl-C has let go of the hosts
    (provision.engine.interrupt), a host still connecting is not waited for.
    """
    options = options or ConnectionOptions()
    check_targets(targets, options)
    size = batch_size or len(targets) or 1
    calls: dict[str, HostCall[T]] = {}
    for start in range(0, len(targets), size):
        batch = list(targets[start : start + size])
        for call in _run_batch(batch, work, forks, options, factory):
            calls[call.host] = call
            if on_done is not None:
                on_done(call)
    return [calls[target.host] for target in targets]


# How long to wait, once Ctrl-C let go of the hosts, for the threads whose connections were closed.
LET_GO_WAIT = 0.5


def _run_batch(
    batch: list[HostTarget], work: Callable[[HostSession], T], forks: int, options: ConnectionOptions, factory: ConnectorFactory
) -> Iterator[HostCall[T]]:
    pending: queue.SimpleQueue[HostTarget] = queue.SimpleQueue()
    for target in batch:
        pending.put(target)
    finished: queue.SimpleQueue[HostCall[T]] = queue.SimpleQueue()
    taken: set[str] = set()

    def worker() -> None:
        while True:
            try:
                target = pending.get_nowait()
            except queue.Empty:
                return
            taken.add(target.host)
            finished.put(call_host(target, work, options, factory))

    for _ in range(max(1, min(forks, len(batch)))):
        threading.Thread(target=worker, daemon=True).start()
    waiting = {target.host for target in batch}
    let_go_at: float | None = None
    while waiting:
        try:
            # A short wait, so that the main thread runs its SIGINT handler at once.
            call = finished.get(timeout=0.1)
        except queue.Empty:
            if STOP.let_go():
                let_go_at = let_go_at or time.monotonic()
                if time.monotonic() - let_go_at > LET_GO_WAIT:
                    break
            continue
        waiting.discard(call.host)
        yield call
    for host in sorted(waiting):
        state = STOP.state_let_go(host) if host in taken else NOT_STARTED["probe"]
        yield HostCall(host, HostStatus.INTERRUPTED, errors=[state])
