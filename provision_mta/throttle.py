"""Log lines for events that can repeat without end (a failed accept, a client
over its limit, a queue folder that cannot be read): one line per interval."""

from __future__ import annotations

import sys
import time

LOG_INTERVAL = 60.0


class Throttled:
    """One log line per ``interval`` per kind of event, with how often it happened meanwhile."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def say(self, kind: str, text: str) -> None:
        now = time.monotonic()
        self._count[kind] = self._count.get(kind, 0) + 1
        if now - self._last.get(kind, -self.interval) >= self.interval:
            count, self._count[kind] = self._count[kind], 0
            self._last[kind] = now
            more = f" ({count - 1} more since the last report)" if count > 1 else ""
            print(f"provision-mta: {text}{more}", file=sys.stderr, flush=True)
