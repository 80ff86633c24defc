"""Per-destination scheduling, as Postfix's queue manager: a destination is a
delivery transport and a next hop (the recipient domain, the relayhost, or a
local mailbox), with a concurrency limit and a rate delay.

A rate delay above zero makes the destination's concurrency 1, and after each
delivery to it (whatever its outcome) the destination rests for the delay
before the next one starts, as qmgr suspends a rate-limited queue
(qmgr_entry_done). Deliveries wait their turn in arrival order; only the first
waiter is woken when a slot opens, so ten thousand messages for one slow
destination cost nothing while they wait, and other destinations never wait
for it. Waiting is in memory only: the message stays in ``active`` meanwhile,
so a restart delivers it (Postfix: the delay timer does not survive a stop or a
reload either).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# Idle destinations whose rest is over are forgotten past this many known ones.
_KEEP = 4096


class Closed(Exception):
    """The queue manager is stopping: a delivery still waiting for its turn is left in the queue."""


@dataclass
class _Destination:
    busy: int = 0
    limit: int = 1
    free_at: float = 0.0
    """The loop time before which no delivery may start (the rate delay's rest)."""
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None

    def may_start(self, now: float) -> bool:
        return (self.limit <= 0 or self.busy < self.limit) and now >= self.free_at

    def idle(self, now: float) -> bool:
        return self.busy == 0 and not self.waiting and now >= self.free_at


class Destinations:
    def __init__(self) -> None:
        self._known: dict[tuple[str, str], _Destination] = {}
        self._closed = False

    @contextlib.asynccontextmanager
    async def slot(self, transport: str, nexthop: str, limit: int, delay: float) -> AsyncIterator[None]:
        """Hold one of the destination's delivery slots for the body of the ``async with``.
        ``limit`` 0 is no limit (Postfix's 0); a ``delay`` above 0 makes it 1."""
        if self._closed:
            raise Closed
        loop = asyncio.get_running_loop()
        key = (transport, nexthop)
        destination = self._known.get(key)
        if destination is None:
            if len(self._known) >= _KEEP:
                self._forget_idle(loop.time())
            destination = self._known[key] = _Destination()
        destination.limit = 1 if delay > 0 else limit  # the running settings: a reload applies to the next turn
        if destination.waiting or not destination.may_start(loop.time()):
            turn: asyncio.Future[None] = loop.create_future()
            destination.waiting.append(turn)
            self._admit(destination)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled() and turn.exception() is None:
                    # Given the slot and cancelled in the same instant: hand it on.
                    destination.busy -= 1
                    self._admit(destination)
                raise
        else:
            destination.busy += 1
        try:
            yield
        finally:
            destination.busy -= 1
            if delay > 0:
                destination.free_at = max(destination.free_at, loop.time() + delay)
            self._admit(destination)

    def _admit(self, destination: _Destination) -> None:
        """Start the first waiters that may start now; else wake up when the rest is over."""
        loop = asyncio.get_running_loop()
        if destination.timer is not None:
            destination.timer.cancel()
            destination.timer = None
        while destination.waiting:
            if destination.waiting[0].done():  # cancelled while waiting
                destination.waiting.popleft()
                continue
            if not destination.may_start(loop.time()):
                if destination.limit <= 0 or destination.busy < destination.limit:  # resting: not full
                    destination.timer = loop.call_at(destination.free_at, self._admit, destination)
                return
            destination.busy += 1
            destination.waiting.popleft().set_result(None)

    def _forget_idle(self, now: float) -> None:
        for key in [key for key, destination in self._known.items() if destination.idle(now)]:
            del self._known[key]

    def close(self) -> None:
        """Stopping: every delivery still waiting for its turn raises Closed (its message stays queued)."""
        self._closed = True
        for destination in self._known.values():
            if destination.timer is not None:
                destination.timer.cancel()
            while destination.waiting:
                turn = destination.waiting.popleft()
                if not turn.done():
                    turn.set_exception(Closed())
