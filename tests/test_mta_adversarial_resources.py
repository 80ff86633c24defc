"""Resources, tried as an attacker and a bad day would (issue 13, points 4-6):
raw sockets against provision-mta and, where it tells something, a real
Postfix with the same main.cf.

- Connections: ``smtpd_client_connection_count_limit`` per client (421, as
  Postfix), a total session limit (the rest wait in the listen queue, as for
  Postfix's busy smtpd processes), never more sessions than the file
  descriptors allow, so a flood from one client leaves other clients, and
  sessions already open, unharmed, and the log quiet.
- ``smtpd_timeout`` per read: a client that keeps sending is never cut off, one that stops is.
- Memory: a message streams to its queue file, so memory does not grow with
  message sizes, and goes back once the sessions end.

bench/mta.py connections|memory runs the same scenarios at full size (the figures are in the README).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.mta import PORT, Daemon, Raw, main_cf, running, wait_until
from tests.support.mta_load import Flood, MemorySampler, big_sessions, daemon_memory, timed_message
from tests.support.mta_postfix import ReferencePostfix

MTA, POSTFIX = "127.81.12.1", "127.81.12.2"
ATTACKER, STRANGER, EARLY = "127.81.212.5", "127.81.212.6", "127.81.212.7"
SETTINGS = {
    "myhostname": "mta.example.test",
    "mydestination": "$myhostname",
    "mynetworks": "127.81.12.0/24",
    "relayhost": "[127.81.12.9]:2599",
}


def daemon_in(folder: Path, settings: Mapping[str, str] | None = None, nofile: int | None = None) -> Daemon:
    """A daemon whose main.cf is SETTINGS and the folder's paths, then ``settings`` (main.cf names, so a mapping, not keywords)."""
    daemon = Daemon(folder / "etc", folder / "spool", MTA, nofile=nofile)
    main_cf(
        daemon.config_directory,
        {
            **SETTINGS,
            "inet_interfaces": MTA,
            "queue_directory": str(daemon.queue),
            "alias_maps": f"hash:{daemon.config_directory}/aliases",
            "home_mailbox": "",
            "mail_spool_directory": str(folder / "mail"),
            **(settings or {}),
        },
    )
    (daemon.config_directory / "aliases").write_text("postmaster: root\n")
    return daemon


def test_a_flood_from_one_client_gets_421_and_harms_nobody_else(tmp_path: Path) -> None:
    """300 idle connections from one client outside mynetworks, the daemon with 256
    file descriptors (before: every descriptor went, sessions already open got
    errors, new clients timed out, and the log grew by hundreds of MB of tracebacks)."""
    daemon = daemon_in(tmp_path, nofile=256)
    with running(daemon):
        early = [Raw(MTA, source=EARLY) for _ in range(3)]
        for raw in early:
            assert raw.code(b"EHLO early.example.org") == 250
        flood = Flood(MTA, PORT, ATTACKER, 300)
        try:
            told = flood.read_banners(10)
            assert (told["220"], told["421"]) == (50, 250)
            assert any(
                line.startswith(b"421 4.7.0 mta.example.test Error: too many connections from 127.81.212.5")
                for line in flood.first.values()
            )
            for _ in range(5):
                codes, _seconds = timed_message(MTA, PORT, STRANGER, b"postmaster@mta.example.test")
                assert codes == [250, 250, 250, 354, 250]
            for raw in early:
                assert raw.message(b"early@example.org", [b"postmaster@mta.example.test"], b"Subject: e\r\n\r\ne\r\n.\r\n")[-1] == 250
                raw.close()
        finally:
            flood.close()
        time.sleep(1)
        log = daemon.log.read_text()
    assert "Traceback" not in log and "Error" not in log
    # One line per intake process for the refusals (then one a minute), one per delivery, the start.
    assert len(log.splitlines()) <= 2 + 8 + 2


def test_the_per_client_limit_is_postfix_s(tmp_path: Path) -> None:
    """The same 8 connections from one client, smtpd_client_connection_count_limit = 5: both answer 5 x 220, 3 x 421."""
    limit = {"smtpd_client_connection_count_limit": "5"}
    results = {}
    with ReferencePostfix(POSTFIX, PORT, {**SETTINGS, **limit}, "postmaster: root\n"):
        flood = Flood(POSTFIX, PORT, ATTACKER, 8)
        results["postfix"] = flood.read_banners(10)
        texts = [line for line in flood.first.values() if line.startswith(b"421")]
        flood.close()
    with running(daemon_in(tmp_path, limit)):
        flood = Flood(MTA, PORT, ATTACKER, 8)
        results["mta"] = flood.read_banners(10)
        flood.close()
    assert results["mta"] == results["postfix"] == {"220": 5, "421": 3, "closed": 0, "silent": 0}
    assert texts[0].startswith(b"421 4.7.0 mta.example.test Error: too many connections from 127.81.212.5")


def test_clients_in_mynetworks_are_exempt_but_the_session_limit_holds(tmp_path: Path) -> None:
    """From inside mynetworks (exempt from the per-client limit, as in Postfix)
    with default_process_limit = 10: 10 sessions, the 11th and 12th wait in the
    listen queue, and one is let in when a session ends. Postfix the same."""
    settings = {"default_process_limit": "10"}
    results = {}
    for which, address in (("postfix", POSTFIX), ("mta", MTA)):
        server = (
            ReferencePostfix(POSTFIX, PORT, {**SETTINGS, **settings}, "postmaster: root\n")
            if which == "postfix"
            else running(daemon_in(tmp_path, settings, nofile=128))
        )
        with server:
            flood = Flood(address, PORT, "127.81.12.50", 12)
            first = flood.read_banners(3)
            holders = [sock for sock in flood.sockets if flood.first.get(sock, b"").startswith(b"220")]
            holders[0].close()
            flood.sockets.remove(holders[0])
            after = flood.read_banners(5)
            results[which] = (first, after)
            flood.close()
    assert results["mta"][0]["220"] == results["postfix"][0]["220"] == 10
    assert results["mta"][1]["220"] == results["postfix"][1]["220"] == 10  # 9 kept, one more let in
    assert results["mta"][1]["silent"] == results["postfix"][1]["silent"] == 1


def test_clients_gone_before_the_banner_leave_no_session_behind(tmp_path: Path) -> None:
    """Connections closed by their client before the banner (port probes, load
    balancers' health checks) end their sessions at once: with 4 sessions allowed,
    20 such probes leave room for 4 real clients (before, with uvloop, each probe kept
    its slot until smtpd_timeout and the clients waited in the listen queue)."""
    with running(daemon_in(tmp_path, {"default_process_limit": "4"})):
        for _ in range(20):
            socket.create_connection((MTA, PORT), timeout=5).close()
        time.sleep(1)
        flood = Flood(MTA, PORT, "127.81.12.50", 4)
        assert flood.read_banners(5) == {"220": 4, "421": 0, "closed": 0, "silent": 0}
        flood.close()


def test_at_the_session_limit_idle_sessions_make_room(tmp_path: Path) -> None:
    """Postfix's stress rule (smtpd_timeout 10 s at the limit): ten idle clients
    cannot keep an eleventh waiting for the full smtpd_timeout (300 s)."""
    with running(daemon_in(tmp_path, {"default_process_limit": "10"})):
        idle = Flood(MTA, PORT, "127.81.12.50", 10)
        assert idle.read_banners(3)["220"] == 10
        started = time.monotonic()
        codes, _seconds = timed_message(MTA, PORT, STRANGER, b"postmaster@mta.example.test", timeout=60)
        waited = time.monotonic() - started
        idle.close()
    assert codes[-1] == 250 and 5 < waited < 30


@pytest.mark.parametrize("which", ["mta", "postfix"])
def test_smtpd_timeout_is_per_read(tmp_path: Path, which: str) -> None:
    """smtpd_timeout = 2s: a DATA that trickles in for 6 s steadily is taken; a client that stops for 3 s is cut off with 421 4.4.2."""
    settings = {**SETTINGS, "smtpd_timeout": "2s"}
    server = (
        ReferencePostfix(POSTFIX, PORT, settings, "postmaster: root\n") if which == "postfix" else running(daemon_in(tmp_path, settings))
    )
    address = POSTFIX if which == "postfix" else MTA
    with server:
        with Raw(address, source=STRANGER) as raw:
            assert raw.begin(b"a@example.org", [b"postmaster@mta.example.test"], helo=b"slow.example.org")[-1] == 354
            raw.send(b"Subject: slow\r\n\r\n")
            for _ in range(24):
                raw.send(b"z" * 500 + b"\r\n")
                time.sleep(0.25)
            assert raw.command(b".")[0] == 250
        with Raw(address, source=STRANGER) as raw:
            assert raw.begin(b"a@example.org", [b"postmaster@mta.example.test"], helo=b"stuck.example.org")[-1] == 354
            raw.send(b"Subject: stuck\r\n\r\npart of it\r\n")
            started = time.monotonic()
            raw.sock.settimeout(10)
            code, text = raw.reply()
            assert code == 421 and "4.4.2" in text and "timeout exceeded" in text
            assert 1.5 < time.monotonic() - started < 8
            try:
                rest = raw.sock.recv(100)
            except ConnectionResetError:
                rest = b""
            assert rest == b""  # and the session is over


def test_memory_does_not_grow_with_message_sizes_and_goes_back(tmp_path: Path) -> None:
    """60 sessions each sending 900 KB at once (every session's data is in before any
    final dot). Before, intake kept every message whole in memory (several copies)
    and kept the memory afterwards; now a session holds a buffer, and once the
    sessions end the memory goes back."""
    with running(daemon_in(tmp_path)) as daemon:
        assert daemon.process is not None
        time.sleep(1)
        before, _ = daemon_memory(daemon.process.pid)
        with MemorySampler(daemon.process.pid) as sampler:
            codes = big_sessions(MTA, PORT, [f"127.81.12.{100 + n}" for n in range(60)], 900 * 1024, b"someone@remote.example.org")
        assert codes == [250] * 60
        wait_until(lambda: not daemon.queued(("incoming", "active")), timeout=120, what="the queue manager")
        time.sleep(3)
        after, _ = daemon_memory(daemon.process.pid)
    peak = sampler.peaks[0]
    print(f"intake memory: {before:.1f} MiB before, {peak:.1f} MiB at the peak, {after:.1f} MiB after")
    assert peak - before < 40  # 60 x 900 KB whole would be 53 MB once, and it was kept in several copies
    assert after - before < 10


def test_a_socket_closed_mid_data_leaves_nothing(tmp_path: Path) -> None:
    with running(daemon_in(tmp_path)) as daemon:
        raw = Raw(MTA, source=STRANGER)
        assert raw.begin(b"a@example.org", [b"postmaster@mta.example.test"], helo=b"gone.example.org")[-1] == 354
        raw.send(b"Subject: gone\r\n\r\n" + b"q" * 100000)
        raw.sock.shutdown(socket.SHUT_RDWR)
        raw.close()
        time.sleep(1)
        assert list((daemon.queue / "incoming").iterdir()) == [] and not daemon.queued()
