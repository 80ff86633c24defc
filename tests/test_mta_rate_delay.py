"""provision-mta's per-destination rate delay (Postfix's default_destination_rate_delay
and NAME_destination_rate_delay, which the postfix role's IP warm-up writes for each
warming transport) and per-transport concurrency limits.

The parsing as main.cf gives it; the scheduler on its own; and the real daemon
relaying bursts to real sinks (aiosmtpd) on loopback, through the master.cf
transports the postfix role writes, and to two domains whose MX a real DNS server
(dnsmasq) gives. Addresses: 127.92.0.0/16 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from itertools import pairwise
from pathlib import Path

import pytest

from provision_mta.config import load_config
from provision_mta.destinations import Closed, Destinations
from tests.support.dns_server import DnsServer
from tests.support.mta import Daemon, main_cf, mta, passwd_with, relay_config, smtp_client, wait_until
from tests.support.smtp_sink import Received, SmtpSink

ADDRESS = "127.92.1.1"
PORT = 2592
SINK, SINK_PORT = "127.92.1.10", 2593
OUT1, OUT2 = "127.92.1.21", "127.92.1.22"
DNS, DNS_PORT = "127.92.1.53", 5392
SINK_A, SINK_B = "127.92.1.31", "127.92.1.32"  # the MX hosts of a.example.test and b.example.test (port 25)
WARM = "letters@news.example.test"  # relay_config's sender map: out1
OTHER = "shop@other.example.test"  # every other sender: out2


def config_with(tmp_path: Path, **settings: str) -> Path:
    folder = tmp_path / "etc"
    main_cf(folder, {"queue_directory": str(tmp_path / "spool"), **settings})
    service = "unix  -       -       n       -       -       smtp"
    (folder / "master.cf").write_text(f"out1      {service}\nsmtp-warm {service}\n")
    return folder


# Parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("0s", 0), ("2", 2), ("2s", 2), ("3m", 180), ("1h", 3600), ("2d", 172800), ("1w", 604800)],
)
def test_rate_delay_is_a_postfix_time_with_its_units(tmp_path: Path, value: str, expected: float) -> None:
    config = load_config(config_with(tmp_path, out1_destination_rate_delay=value) / "main.cf")
    assert config.rate_delay("out1") == expected


def test_a_transport_takes_its_own_delay_else_the_default(tmp_path: Path) -> None:
    config = load_config(
        config_with(
            tmp_path,
            default_destination_rate_delay="5s",
            out1_destination_rate_delay="1m",
            smtp_destination_rate_delay="$default_destination_rate_delay",
            relay_destination_rate_delay="0",
            **{"smtp-warm_destination_rate_delay": "7"},  # master.cf names may hold "-"
        )
        / "main.cf"
    )
    assert (config.rate_delay("out1"), config.rate_delay("smtp"), config.rate_delay("relay")) == (60, 5, 0)
    assert config.rate_delay("smtp-warm") == 7
    assert config.rate_delay("out2") == 5  # not named: the default
    assert load_config(config_with(tmp_path) / "main.cf").rate_delay("smtp") == 0  # Postfix's default: none


def test_a_rate_delay_makes_the_concurrency_one_and_limits_are_per_transport(tmp_path: Path) -> None:
    config = load_config(
        config_with(
            tmp_path,
            default_destination_concurrency_limit="20",
            out1_destination_concurrency_limit="5",
            smtp_destination_rate_delay="1s",
        )
        / "main.cf"
    )
    assert config.concurrency_limit("out1") == 5
    assert config.concurrency_limit("smtp") == 1  # as Postfix: a rate-limited destination gets one delivery at a time
    assert config.concurrency_limit("relay") == 20
    assert config.concurrency_limit("local") == 2  # local_destination_concurrency_limit's default


def test_the_parameters_are_no_longer_unsupported(tmp_path: Path) -> None:
    folder = config_with(
        tmp_path,
        default_destination_rate_delay="1s",
        out1_destination_rate_delay="2s",
        out1_destination_concurrency_limit="3",
        smtp_destination_rate_delay="1s",
        out9_destination_rate_delay="2s",  # no such transport in master.cf
    )
    config = load_config(folder / "main.cf")
    assert config.unsupported == []
    assert config.unknown_transports == ["out9_destination_rate_delay"]
    checked = mta(folder, "check")
    output = checked.stderr.decode()
    assert checked.returncode == 0, output
    assert "not supported" not in output
    assert output.count("warning: out9_destination_rate_delay names no transport of master.cf and has no effect") == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("out1_destination_rate_delay", "fast"),
        ("out1_destination_rate_delay", "1.5s"),
        ("out1_destination_rate_delay", "-1s"),
        ("out1_destination_rate_delay", "2x"),
        ("out1_destination_rate_delay", "99999999w"),  # past what Postfix's int holds
        ("default_destination_rate_delay", "soon"),
        ("smtp_destination_rate_delay", "s"),
        ("out1_destination_concurrency_limit", "many"),
        ("default_destination_concurrency_limit", "-1"),
    ],
)
def test_a_bad_value_is_a_start_up_error_naming_the_parameter(tmp_path: Path, name: str, value: str) -> None:
    folder = config_with(tmp_path, **{name: value})
    with pytest.raises(ValueError, match=f"^{name} = {value}: not a"):
        load_config(folder / "main.cf")
    started = mta(folder, "serve", "--port", str(PORT))  # fails on reading main.cf, before it binds anything
    error = started.stderr.decode()
    assert started.returncode == 1 and f"{name} = {value}: not a" in error and "Traceback" not in error, error


# The scheduler --------------------------------------------------------------------------


def test_deliveries_to_one_destination_are_spaced_and_others_go_on() -> None:
    async def scenario() -> dict[str, list[tuple[float, float]]]:
        destinations = Destinations()
        loop = asyncio.get_running_loop()
        spans: dict[str, list[tuple[float, float]]] = {"slow": [], "fast": []}

        async def deliver(nexthop: str, delay: float) -> None:
            async with destinations.slot("out1", nexthop, 20, delay):
                start = loop.time()
                await asyncio.sleep(0.05)
                spans[nexthop].append((start, loop.time()))

        begin = loop.time()
        await asyncio.gather(*(deliver("slow", 0.3) for _ in range(4)), *(deliver("fast", 0) for _ in range(4)))
        return {name: [(a - begin, b - begin) for a, b in found] for name, found in spans.items()}

    spans = asyncio.run(scenario())
    slow = sorted(spans["slow"])
    # One at a time, each starting at least the delay after the previous one ended.
    assert all(later[0] - earlier[1] >= 0.29 for earlier, later in pairwise(slow)), slow
    # The other destination: all four at once, none waiting for the slow one's rest.
    assert all(start < 0.1 for start, _ in spans["fast"]), spans["fast"]


def test_waiting_deliveries_are_released_when_it_stops() -> None:
    async def scenario() -> list[str]:
        destinations = Destinations()
        results: list[str] = []

        async def deliver() -> None:
            try:
                async with destinations.slot("out1", "example.org", 20, 60):
                    results.append("delivered")
            except Closed:
                results.append("left queued")

        tasks = [asyncio.create_task(deliver()) for _ in range(3)]
        await asyncio.sleep(0.1)
        destinations.close()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        return results

    assert asyncio.run(scenario()) == ["delivered", "left queued", "left queued"]


def test_a_cancelled_waiter_does_not_keep_its_turn() -> None:
    async def scenario() -> int:
        destinations = Destinations()
        delivered = 0

        async def deliver() -> None:
            nonlocal delivered
            async with destinations.slot("smtp", "example.org", 1, 0):
                await asyncio.sleep(0.05)
                delivered += 1

        first, second, third = (asyncio.create_task(deliver()) for _ in range(3))
        await asyncio.sleep(0.01)
        second.cancel()
        await asyncio.wait_for(asyncio.gather(first, third), timeout=5)
        return delivered

    assert asyncio.run(scenario()) == 2


# The daemon ------------------------------------------------------------------------------


def start(tmp_path: Path, **extra: str) -> Daemon:
    daemon = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS, port=PORT)
    relay_config(daemon.config_directory, daemon.queue, ADDRESS, SINK, SINK_PORT, (OUT1, OUT2), **extra)
    daemon.start()
    return daemon


def burst(messages: list[tuple[str, str]]) -> None:
    """All at once: one session, one message after another, each answered 250 at once."""
    with smtp_client(ADDRESS, PORT) as smtp:
        for sender, subject in messages:
            smtp.sendmail(sender, ["reader@remote.example.org"], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())


def gaps(received: list[Received]) -> list[float]:
    times = sorted(message.arrived for message in received)
    return [later - earlier for earlier, later in pairwise(times)]


def test_a_warming_transport_delivers_one_at_a_time_spaced_by_its_delay_and_the_other_is_not_held(tmp_path: Path) -> None:
    """The warm-up's line for out1 (relayhost: the next hop is the sink for both transports);
    out2 has no delay: the same burst through it arrives without the gaps, and is not held up."""
    daemon = start(tmp_path, out1_destination_rate_delay="2s")
    try:
        with SmtpSink(SINK, SINK_PORT, delay=0.2) as sink:
            burst([(sender, f"{name} {n}") for n in range(4) for sender, name in ((WARM, "warm"), (OTHER, "other"))])
            answered = time.monotonic()  # every message of the burst answered 250
            received = sink.wait_for(8, timeout=30)
            time.sleep(0.5)  # nothing more may come: no message twice
            assert len(sink.messages) == 8
        wait_until(lambda: not daemon.queued(), timeout=10, what="an empty queue")
    finally:
        log = daemon.stop()
    warm = [m for m in received if m.subject.startswith("warm")]
    other = [m for m in received if m.subject.startswith("other")]
    assert sorted(m.subject for m in warm) == [f"warm {n}" for n in range(4)] and {m.peer for m in warm} == {OUT1}
    assert sorted(m.subject for m in other) == [f"other {n}" for n in range(4)] and {m.peer for m in other} == {OUT2}
    assert all(gap >= 1.8 for gap in gaps(warm)), (gaps(warm), log)
    assert all(gap < 1.8 for gap in gaps(other)), gaps(other)
    second_warm = sorted(m.arrived for m in warm)[1]
    assert max(m.arrived for m in other) < second_warm  # not held up by out1's rests
    assert answered < second_warm  # intake is not slowed by the rests either


def test_the_same_burst_without_a_delay_is_not_spaced(tmp_path: Path) -> None:
    daemon = start(tmp_path, out1_destination_rate_delay="0s")
    try:
        with SmtpSink(SINK, SINK_PORT, delay=0.2) as sink:
            burst([(WARM, f"warm {n}") for n in range(4)])
            received = sink.wait_for(4, timeout=30)
    finally:
        daemon.stop()
    assert all(gap < 1.8 for gap in gaps(received)), gaps(received)


def test_a_message_waiting_for_its_turn_is_kept_over_a_restart(tmp_path: Path) -> None:
    """Stopped while three messages wait out a long rest: they stay queued (and the stop does
    not wait for the rest); started again without the delay, each arrives once."""
    daemon = start(tmp_path, out1_destination_rate_delay="1h")
    try:
        with SmtpSink(SINK, SINK_PORT) as sink:
            burst([(WARM, f"warm {n}") for n in range(4)])
            sink.wait_for(1, timeout=30)
            wait_until(lambda: len(daemon.queued(("active",))) == 3, timeout=10, what="three messages waiting in active")
            began = time.monotonic()
            log = daemon.stop()
            stopping = time.monotonic() - began
            assert len(daemon.queued()) == 3, log
            assert stopping < 25, f"the stop waited {stopping:.0f} s for the rest"  # the queue manager gives waiters 30 s
            relay_config(daemon.config_directory, daemon.queue, ADDRESS, SINK, SINK_PORT, (OUT1, OUT2))
            daemon.start()
            sink.wait_for(4, timeout=30)
            wait_until(lambda: not daemon.queued(), timeout=10, what="an empty queue")
            time.sleep(0.5)
            received = sink.messages
    finally:
        daemon.stop_if_running()
    assert sorted(m.subject for m in received) == [f"warm {n}" for n in range(4)]


def local_settings(daemon: Daemon, **extra: str) -> dict[str, str]:
    """main.cf for a daemon on ADDRESS that delivers $myhostname's mail itself, plus ``extra``."""
    return {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname",
        "mynetworks": "127.0.0.0/8",
        "inet_interfaces": ADDRESS,
        "queue_directory": str(daemon.queue),
        **extra,
    }


def port_25_free(address: str) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, 25))
        except OSError:
            return False
    return True


def test_another_domain_is_not_held_up_by_a_rate_limited_one(tmp_path: Path) -> None:
    """No relayhost: the next hop is the recipient's domain (its MX, from a real DNS server).
    default_destination_rate_delay spaces a.example.test's mail; b.example.test's goes at once."""
    if not port_25_free(SINK_A):
        # MX delivery is to port 25; a lab container's Postfix on 0.0.0.0:25 (host network) holds it
        # on every loopback address. The transports' test above covers two destinations meanwhile.
        pytest.skip("port 25 is taken on every address (an MTA listens on 0.0.0.0:25)")
    daemon = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS, port=PORT, arguments=["--dns-server", f"{DNS}:{DNS_PORT}"])
    main_cf(daemon.config_directory, local_settings(daemon, default_destination_rate_delay="2s"))
    forward = {"mx.a.example.test": SINK_A, "mx.b.example.test": SINK_B}
    mx = {"a.example.test": "mx.a.example.test", "b.example.test": "mx.b.example.test"}
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer(DNS, DNS_PORT))
        dns.serve(forward, {}, mx=mx)
        to_a = stack.enter_context(SmtpSink(SINK_A, 25))
        to_b = stack.enter_context(SmtpSink(SINK_B, 25))
        daemon.start()
        stack.callback(daemon.stop_if_running)
        with smtp_client(ADDRESS, PORT) as smtp:
            for n in range(3):
                smtp.sendmail(OTHER, [f"reader{n}@a.example.test"], f"Subject: a {n}\r\n\r\nhello\r\n".encode())
            smtp.sendmail(OTHER, ["reader@b.example.test"], b"Subject: b\r\n\r\nhello\r\n")
        at_a = to_a.wait_for(3, timeout=30)
        (at_b,) = to_b.wait_for(1, timeout=30)
    assert all(gap >= 1.8 for gap in gaps(at_a)), gaps(at_a)
    assert at_b.arrived < sorted(m.arrived for m in at_a)[1]  # sent last, arrived before a.example.test's second


def test_local_deliveries_to_one_mailbox_are_spaced_and_another_mailbox_is_not_held(tmp_path: Path) -> None:
    """The local transport's destination is the mailbox (Postfix's local_destination_recipient_limit
    of 1): local_destination_rate_delay spaces one mailbox's copies; another mailbox's comes at once."""
    passwd, slow_home = passwd_with(tmp_path, "ratedslow")
    (tmp_path / "other").mkdir()
    fast_passwd, fast_home = passwd_with(tmp_path / "other", "ratedfast")
    passwd.write_text(passwd.read_text() + fast_passwd.read_text().splitlines(keepends=True)[-1])
    daemon = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS, port=PORT, passwd=passwd)
    main_cf(
        daemon.config_directory,
        local_settings(daemon, alias_maps="", home_mailbox="Maildir/", local_destination_rate_delay="2s"),
    )
    daemon.start()
    try:
        with smtp_client(ADDRESS, PORT) as smtp:
            for n in range(3):
                smtp.sendmail(OTHER, ["ratedslow@mta.example.test"], f"Subject: slow {n}\r\n\r\nhello\r\n".encode())
            smtp.sendmail(OTHER, ["ratedfast@mta.example.test"], b"Subject: fast\r\n\r\nhello\r\n")
        wait_until(lambda: len(delivered(slow_home)) == 3 and len(delivered(fast_home)) == 1, timeout=30, what="four copies")
        wait_until(lambda: not daemon.queued(), timeout=10, what="an empty queue")
    finally:
        daemon.stop()
    slow = delivered(slow_home)
    assert all(later - earlier >= 1.8 for earlier, later in pairwise(slow)), slow
    assert delivered(fast_home)[0] < slow[1]  # sent last, delivered before the slow mailbox's second


def delivered(home: Path) -> list[float]:
    """When each copy in the Maildir was written: its name starts with time.time_ns() (maildir_deliver)."""
    new = home / "Maildir" / "new"
    return sorted(int(name.name.partition(".")[0]) / 1e9 for name in new.iterdir()) if new.is_dir() else []
