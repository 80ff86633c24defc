"""IP warm-up: a new outgoing address sends little at first and more each day.

Receivers throttle an address they have not seen before; every bulk sender
"warms up" new addresses over weeks. A transport of the postfix role may
declare ``warmup: {start: DATE}`` with a daily curve (``volumes``: messages
a day to any one receiving domain; or ``weights``: its share under random
selection, day by day). For a given date this module turns the schedule into
what Postfix understands:

- the transport's weight in ``randmap:{...}`` (its share of the mail);
- ``NAME_destination_rate_delay`` for the queue manager, so that the address
  never sends more than the day's volume to one domain (Postfix applies a
  non-zero rate delay with a concurrency of one per destination).

Pure functions of (transports, date): a daily ``provision apply`` from cron
moves every address one step; the same date always gives the same files.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

# Messages a day to one receiving domain, day 1 to day 28; from day 29 the
# address is warmed up and sends at its full weight without a rate limit.
# Roughly what the large mailbox providers' guidance gives: start at tens,
# grow by a third to a half a day, reach tens of thousands in four weeks.
DEFAULT_VOLUMES = (
    50, 100, 150, 250, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000,
    5000, 6000, 7500, 9000, 11000, 13000, 15000, 18000, 21000, 25000, 30000, 35000, 42000, 50000,
)  # fmt: skip
SECONDS_PER_DAY = 86400
# A warming transport's share is rounded to 1/RESOLUTION of a full one (never 0).
RESOLUTION = 20
MAX_RANDMAP_ENTRIES = 2000

BEFORE, WARMING, WARMED, NONE = "not started", "warming up", "warmed up", "no warm-up"


@dataclass(frozen=True)
class Step:
    """Where one transport stands on one date."""

    stage: str
    day: int = 0
    """1 on the start date; 0 before it or without a schedule."""
    days: int = 0
    """Length of the schedule."""
    share: float = 1.0
    """Weight today as a fraction of the transport's full weight."""
    volume: int | None = None
    """Messages a day to one receiving domain today (None: no limit)."""
    rate_delay: int | None = None
    """Seconds between two deliveries to one domain (Postfix's destination_rate_delay)."""
    start: str = ""
    date: str = ""
    """The date this step is for."""

    def describe(self) -> str:
        if self.stage == BEFORE:
            return f"starts {self.start}: sends nothing yet"
        if self.stage == WARMING:
            limit = f", {self.volume} messages a day per receiving domain" if self.volume else ""
            return f"day {self.day} of {self.days}: {self.share:.0%} of its full weight{limit}"
        if self.stage == WARMED:
            return f"warmed up (schedule from {self.start} ended)"
        return NONE

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def _date(value: Any, today: dt.date | None) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if value:
        return dt.date.fromisoformat(str(value))
    return today or dt.date.today()


def step(transport: dict[str, Any], on: Any = None, default_volumes: Any = None) -> Step:
    """The warm-up step of ``transport`` on the date ``on`` (default: today)."""
    warmup = transport.get("warmup")
    today = _date(on, None)
    if not warmup:
        return Step(NONE, date=today.isoformat())
    start = _date(warmup["start"], None)
    weights = list(warmup.get("weights") or [])
    volumes = list(warmup.get("volumes") or ([] if weights else (default_volumes or DEFAULT_VOLUMES)))
    days = max(len(weights), len(volumes))
    day = (today - start).days + 1
    if day < 1:
        return Step(BEFORE, 0, days, 0.0, start=start.isoformat(), date=today.isoformat())
    if day > days:
        return Step(WARMED, day, days, 1.0, start=start.isoformat(), date=today.isoformat())
    full = int(transport.get("weight") or 1)
    if weights:
        # Weights are given for each day on the scale of the transport's own weight.
        share = min(1.0, weights[min(day, len(weights)) - 1] / full)
    else:
        # What randmap can express: whole twentieths of a full transport, at least one.
        share = max(1, round(RESOLUTION * volumes[day - 1] / volumes[-1])) / RESOLUTION
    volume = volumes[min(day, len(volumes)) - 1] if volumes else None
    delay = math.ceil(SECONDS_PER_DAY / volume) if volume else None
    return Step(WARMING, day, days, share, volume, delay, start.isoformat(), today.isoformat())


def transports_on(transports: Any, on: Any = None, default_volumes: Any = None) -> list[dict[str, Any]]:
    """The transports with today's integer ``weight`` for randmap and their ``warmup_step``.

    Without any transport warming up the weights stay as declared. Otherwise
    every weight is scaled so that a warming transport's fraction of its full
    weight can be written in whole randmap entries (1/20 resolution, at least
    one entry), then divided by their greatest common divisor.
    """
    steps = [step(t, on, default_volumes) for t in transports]
    if all(s.stage in (NONE, WARMED) for s in steps):
        return [{**t, "warmup_step": s.as_dict()} for t, s in zip(transports, steps, strict=True)]
    full = [int(t.get("weight") or 1) for t in transports]
    scale = max(1, min(RESOLUTION, MAX_RANDMAP_ENTRIES // max(1, sum(full))))
    weights = []
    for weight, current in zip(full, steps, strict=True):
        if current.stage == BEFORE:
            weights.append(0)
        elif current.stage == WARMING:
            weights.append(max(1, round(weight * scale * current.share)))
        else:
            weights.append(weight * scale)
    divisor = math.gcd(*weights) or 1
    return [{**t, "weight": w // divisor, "warmup_step": s.as_dict()} for t, w, s in zip(transports, weights, steps, strict=True)]
