"""Idle SMTP connections kept for the next message to the same next hop.

As Postfix's connection cache (``smtp_connection_cache_on_demand``): when
mail for one destination piles up, a new TCP connection, banner, EHLO and
STARTTLS for every message cost more than the message itself. A connection
that just delivered is kept for ``IDLE_LIMIT`` seconds; before it is used
again a RSET proves it still answers (as Postfix does), else a fresh one is
made (the RSET goes with the next message's commands when the next hop
takes them pipelined). Keyed by next hop, bound address and HELO name, so a
connection is only reused for mail that would have made the same one.
"""

from __future__ import annotations

import contextlib
import smtplib
import threading
import time

IDLE_LIMIT = 2.0
PER_DESTINATION = 20

Key = tuple[str, int, str, str]


class ConnectionCache:
    def __init__(self, idle_limit: float = IDLE_LIMIT, per_destination: int = PER_DESTINATION) -> None:
        self.idle_limit, self.per_destination = idle_limit, per_destination
        self._idle: dict[Key, list[tuple[smtplib.SMTP, float]]] = {}
        self._lock = threading.Lock()

    def take(self, key: Key) -> smtplib.SMTP | None:
        """An idle connection to ``key``, or None. It has not been checked: its user
        sends RSET first (with the message's commands, see ``delivery.send_message``)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                client, since = idle.pop()
            if time.monotonic() - since <= self.idle_limit:
                return client
            _close(client)

    def give(self, key: Key, client: smtplib.SMTP) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.per_destination:
                idle.append((client, time.monotonic()))
                return
        _close(client)

    def expire(self, everything: bool = False) -> None:
        """Close what has been idle too long (the queue manager calls this every second), or all of it."""
        now = time.monotonic() + (self.idle_limit * 2 if everything else 0)
        stale: list[smtplib.SMTP] = []
        with self._lock:
            for key, idle in list(self._idle.items()):
                stale += [client for client, since in idle if now - since > self.idle_limit]
                self._idle[key] = [(client, since) for client, since in idle if now - since <= self.idle_limit]
        for client in stale:
            _close(client)


def _close(client: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        client.quit()
    client.close()


CACHE = ConnectionCache()
