"""Watching the round trips: ``-v`` (each one and its timing), ``-vv`` (what
was sent) and progress lines for long steps (package installs).

Every round trip goes through :func:`provision.engine.agent_call.call_agent`,
which tells the observer of the host it runs for (set by
:func:`provision.engine.hosts.call_host` around the host's work, in the
host's own thread) before and after each one. No observer, no cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RoundTrip:
    host: str
    op: str
    number: int
    """1 for the host's first round trip of this command, 2 for the next..."""
    seconds: float
    exit_code: int | None
    """None when the connection failed before the command ended."""
    sent: int
    received: int


class Observer(Protocol):
    """Told of each round trip; called from the host's worker thread."""

    def starting(self, host: str, op: str, number: int, command: str, request: Mapping[str, Any]) -> None: ...

    def finished(self, trip: RoundTrip) -> None: ...


@dataclass
class Watch:
    host: str
    observer: Observer
    secrets: Sequence[str] = ()
    """The host's secret values: an observer never sees them (a handler's command may hold one)."""
    count: int = 0


_watch: ContextVar[Watch | None] = ContextVar("provision_watch", default=None)


@contextmanager
def watching(host: str, observer: Observer | None, secrets: Sequence[str] = ()) -> Iterator[None]:
    """Report the round trips made inside this block, for ``host``, to ``observer``."""
    if observer is None:
        yield
        return
    token = _watch.set(Watch(host, observer, secrets))
    try:
        yield
    finally:
        _watch.reset(token)


def current() -> Watch | None:
    return _watch.get()


def shown_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as ``-vv`` shows it: file contents replaced by their size (never a secret on a terminal)."""

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: (f"<{len(v) * 3 // 4} bytes>" if k == "content_b64" and isinstance(v, str) else walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return {k: walk(v) for k, v in request.items() if k != "root"}


def masked(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (a request, a command) with every secret in its strings masked, as in diffs and errors."""
    if not secrets:
        return value
    from provision.engine.diffs import mask

    if isinstance(value, str):
        return mask(value, list(secrets))
    if isinstance(value, Mapping):
        return {k: masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, secrets) for v in value]
    return value
