"""What a long run says while it runs, on stderr.

- ``-v``: each round trip as it ends: host, its number, the operation, its
  seconds, exit and bytes; ``-vv`` also what was sent (the command and the
  request, file contents replaced by their size).
- Progress when stderr is not a terminal (cron, CI, ``| tee``): one line per
  host as it finishes, in completion order, and one for each long step
  (package installs) as it starts; on a terminal a live bar does this.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from provision.engine.converge import HostResult
from provision.engine.trace import Observer, RoundTrip, shown_request

Echo = Callable[[str], None]


def _size(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} kB"


def long_step(op: str, request: Mapping[str, Any]) -> str | None:
    """A phrase for a round trip that may take long, or None."""
    packages = request.get("packages") if op == "stage" else None
    if packages:
        return f"installing package{'s' if len(packages) > 1 else ''} {', '.join(map(str, packages))}"
    return None


class RoundTripPrinter:
    """``-v`` and ``-vv``."""

    def __init__(self, verbosity: int, echo: Echo) -> None:
        self.verbosity = verbosity
        self.echo = echo

    def starting(self, host: str, op: str, number: int, command: str, request: Mapping[str, Any]) -> None:
        if self.verbosity >= 2:
            self.echo(f"{host}: round trip {number} ({op}) sends: {command}")
            self.echo(f"{host}:   request: {json.dumps(shown_request(request), sort_keys=True)}")

    def finished(self, trip: RoundTrip) -> None:
        if self.verbosity >= 1:
            ended = f"exit {trip.exit_code}" if trip.exit_code is not None else "connection failed"
            self.echo(
                f"{trip.host}: round trip {trip.number} ({trip.op}): {trip.seconds:.3f} s, {ended}, "
                f"sent {_size(trip.sent)}, received {_size(trip.received)}"
            )


class LongSteps:
    """One line as each long step starts (a package install can take minutes)."""

    def __init__(self, echo: Echo) -> None:
        self.echo = echo

    def starting(self, host: str, op: str, number: int, command: str, request: Mapping[str, Any]) -> None:
        step = long_step(op, request)
        if step is not None:
            self.echo(f"{host}: {step}...")

    def finished(self, trip: RoundTrip) -> None:
        pass


class Observers:
    """Several observers as one."""

    def __init__(self, *observers: Observer | None) -> None:
        self.observers = [o for o in observers if o is not None]

    def starting(self, host: str, op: str, number: int, command: str, request: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer.starting(host, op, number, command, request)

    def finished(self, trip: RoundTrip) -> None:
        for observer in self.observers:
            observer.finished(trip)


_STDERR = threading.Lock()


def stderr_line(text: str) -> None:
    """One line on stderr; lines from several hosts' threads never interleave."""
    with _STDERR:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class HostLines:
    """One line per host as it finishes: ``[2/5] mx1: changed, 3 changes, 2.41 s``."""

    def __init__(self, total: int, check: bool, echo: Echo) -> None:
        self.total = total
        self.check = check
        self.echo = echo
        self.done = 0
        self.lock = threading.Lock()

    def __call__(self, result: HostResult) -> None:
        with self.lock:
            self.done += 1
            number = self.done
        status = "drift" if self.check and result.status == "changed" else str(result.status)
        changes = len(result.files) + len(result.directories) + len(result.packages) + len(result.services)
        detail = f", {changes} change{'s' if changes != 1 else ''}" if changes else ""
        error = f": {result.errors[0].splitlines()[0]}" if result.errors and result.status in ("failed", "unreachable") else ""
        self.echo(f"[{number}/{self.total}] {result.host}: {status}{detail}, {result.seconds:.2f} s{error}")
