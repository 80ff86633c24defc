"""Crash safety end to end, counted at the sink: 2,000 messages from 20
concurrent SMTP clients while the daemon is killed with SIGKILL three times
and started again. Every message that got 250 must reach the sink.

Twice: first with the sink answering 421 during the load (every kill hits
intake, queue files and deferrals, never a delivery the sink kept): then
no message may arrive twice. Then with the sink accepting throughout, so
kills also land in the middle of deliveries: a message whose 250 from the
sink came back just before the kill can go out again (RFC 5321 6.1; the
MTA removes the queue file the instant the sink's 250 arrives to keep that
window small), so there duplicates are counted and bounded by the messages
in flight, and nothing may be lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mta import Daemon, load_with_kills, relay_config

ADDRESS = "127.81.3.1"
SINK, SINK_PORT = "127.81.3.10", 2527
OUT = ("127.81.3.21", "127.81.3.22")
TOTAL, CLIENTS, KILLS = 2000, 20, 3
CONCURRENCY = 20  # default_destination_concurrency_limit: the most deliveries in flight at a kill


class CountingSink:
    """tests/support/counting_sink.py, in its own process."""

    def __init__(self, folder: Path) -> None:
        self.log = folder / "sink.log"
        self.log.touch()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.counting_sink", SINK, str(SINK_PORT), str(self.log)], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == b"ready\n"

    def refuse(self, refusing: bool) -> None:
        flag = Path(f"{self.log}.refuse")
        flag.touch() if refusing else flag.unlink()

    def counts(self) -> Counter[str]:
        return Counter(self.log.read_text().split())


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[CountingSink]:
    running = CountingSink(tmp_path)
    yield running
    running.process.kill()
    running.process.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    relay_config(running.config_directory, running.queue, ADDRESS, SINK, SINK_PORT, OUT, sender_dependent_default_transport_maps="")
    running.start()
    yield running
    running.stop_if_running()


def arrived(sink: CountingSink, wanted: set[str], daemon: Daemon, timeout: float = 120) -> Counter[str]:
    """Message-IDs counted at the sink, once every wanted one is there (and the queue is empty)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = sink.counts()
        if wanted <= set(counts) and not daemon.queued():
            return counts
        if time.monotonic() > deadline:
            missing = wanted - set(counts)
            raise AssertionError(f"{len(missing)} acknowledged messages never reached the sink; {len(daemon.queued())} still queued")
        time.sleep(0.5)


def test_kills_during_intake_lose_nothing_and_deliver_nothing_twice(daemon: Daemon, sink: CountingSink) -> None:
    sink.refuse(True)
    acknowledged = load_with_kills(daemon, TOTAL, CLIENTS, KILLS)
    sink.refuse(False)  # deferred mail is retried after minimal_backoff_time (1 s here)
    counts = arrived(sink, acknowledged, daemon)
    print(f"acknowledged {len(acknowledged)} of {TOTAL}; the sink got {len(counts)} distinct, {sum(counts.values())} in all")
    assert [message_id for message_id, count in counts.items() if count > 1] == []


def test_kills_during_delivery_lose_nothing(daemon: Daemon, sink: CountingSink) -> None:
    acknowledged = load_with_kills(daemon, TOTAL, CLIENTS, KILLS)
    counts = arrived(sink, acknowledged, daemon)
    twice = [message_id for message_id, count in counts.items() if count > 1]
    print(f"acknowledged {len(acknowledged)} of {TOTAL}; the sink got {len(counts)} distinct; {len(twice)} delivered twice")
    assert len(twice) <= KILLS * CONCURRENCY
