"""Ctrl-C: stop starting work at once, let the round trips in flight end, say where each host is.

The first SIGINT asks every host to stop: a host not started yet is not
contacted, and a host stops before its next round trip (after a probe, after
staging), so nothing is half-applied by provision's own doing. The round
trips in flight get ``grace`` seconds to end; then, or at a second SIGINT,
their connections are closed. A probe or a staging that is let go changes
nothing; a commit that is let go goes on on the host by itself (the agent
does not depend on the connection to finish it), and ``provision check``
shows where it ended. The command then prints each host's state and exits 130.

One process-wide :data:`STOP`: the CLI installs the handler with
:func:`sigint_stops`; :func:`provision.engine.agent_call.call_agent` asks it
before every round trip; :func:`provision.engine.hosts.call_host` asks it
before contacting a host and registers the connection it may have to close.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130
GRACE_SECONDS = 3.0

# What a host had done when it stopped, by the operation it did not start...
NOT_STARTED = {
    "probe": "not started: nothing was asked of the host",
    "stage": "stopped after the probe: nothing was changed",
    "commit": "stopped after staging and validation: no file was changed (packages the staging installed stay)",
}
# ...and by the operation in flight when its connection was let go.
LET_GO = {
    "connect": "let go while it connected or ran: no answer came in time; provision check shows where it is",
    "probe": "let go while it probed: a probe changes nothing",
    "stage": "let go while it staged and validated: no file was changed (a package it was installing may still be installed)",
    "commit": "let go while it committed: the host finishes the commit and its handlers by itself; provision check shows where it ended",
}


class StopRequested(Exception):
    """Raised in a host's work instead of its next round trip (or when its round trip was let go)."""

    def __init__(self, operation: str, let_go: bool = False) -> None:
        self.operation, self.let_go = operation, let_go
        table = LET_GO if let_go else NOT_STARTED
        verb = "let go while it ran" if let_go else "stopped before"
        super().__init__(table.get(operation, f"{verb} {operation}: nothing more was asked of the host"))


class Stop:
    def __init__(self) -> None:
        self._requested = threading.Event()
        self._let_go = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._in_flight: dict[str, str] = {}

    def requested(self) -> bool:
        return self._requested.is_set()

    def let_go(self) -> bool:
        return self._let_go.is_set()

    def request(self) -> None:
        self._requested.set()

    def release(self) -> None:
        """Close every connection still open: their round trips end now."""
        self._requested.set()
        self._let_go.set()
        with self._lock:
            connections = list(self._open)
        for connector in connections:
            with contextlib.suppress(Exception):
                connector.close()

    def opened(self, connector: Any) -> None:
        with self._lock:
            self._open.add(connector)
        if self.let_go():
            with contextlib.suppress(Exception):
                connector.close()

    def closed(self, connector: Any) -> None:
        with self._lock:
            self._open.discard(connector)

    @contextlib.contextmanager
    def round_trip(self, host: str, operation: str) -> Iterator[None]:
        """Marks ``host`` as running ``operation``, so that a host let go is described by what it was doing."""
        with self._lock:
            self._in_flight[host] = operation
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.pop(host, None)

    def state_let_go(self, host: str) -> str:
        """What a host whose work did not end in time was doing."""
        with self._lock:
            operation = self._in_flight.get(host)
        return LET_GO.get(operation or "connect", f"let go while it ran {operation}: nothing more was asked of the host")

    def reset(self) -> None:
        self._requested.clear()
        self._let_go.clear()
        with self._lock:
            self._in_flight.clear()


STOP = Stop()


@contextlib.contextmanager
def sigint_stops(say: Callable[[str], None], grace: float = GRACE_SECONDS) -> Iterator[Stop]:
    """While inside: SIGINT stops as the module says (a second one lets go at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.reset()
    timer: threading.Timer | None = None

    def handler(number: int, frame: FrameType | None) -> None:
        nonlocal timer
        if STOP.requested():
            say("interrupted again: letting go of the hosts still working")
            STOP.release()
            return
        STOP.request()
        say(f"interrupted: no new host or round trip starts; those in flight get {grace:g} s (Ctrl-C again to let go now)")
        timer = threading.Timer(grace, STOP.release)
        timer.daemon = True
        timer.start()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield STOP
    finally:
        signal.signal(signal.SIGINT, previous)
        if timer is not None:
            timer.cancel()
