"""The built-in MTA's intake, against the real daemon over real SMTP on loopback:
relay rules, limits, what EHLO offers, queue file modes, headers, and no
acknowledged message lost across kill -9."""

from __future__ import annotations

import smtplib
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision_mta.queue import read_message
from tests.support.mta import PORT, Daemon, load_with_kills, main_cf, self_signed, smtp_client

ADDRESS = "127.81.1.1"
OUTSIDE = "127.81.201.5"  # a client address outside mynetworks


def write_main_cf(folder: Path, queue: Path, **extra: str) -> None:
    settings = {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname, example.test",
        "mynetworks": "127.0.0.1/32 127.81.1.0/24",
        "inet_interfaces": ADDRESS,
        "queue_directory": str(queue),
        "message_size_limit": "20000",
        "smtpd_recipient_limit": "3",
        "compatibility_level": "3.6",
        "smtpd_client_restrictions": "permit",
        "alias_maps": f"hash:{folder}/aliases",
        # The next hop is a closed port: accepted mail stays queued (deferred) for these tests to read.
        "relayhost": "[127.81.1.9]:2599",
        **extra,
    }
    main_cf(folder, settings)
    (folder / "aliases").write_text("postmaster: root\n")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    write_main_cf(running.config_directory, running.queue)
    running.start()
    yield running
    running.stop_if_running()


def client(source: str = ADDRESS) -> smtplib.SMTP:
    return smtp_client(ADDRESS, PORT, source)


def test_ehlo_offers_size_pipelining_8bitmime_smtputf8(daemon: Daemon) -> None:
    with client() as smtp:
        code, _ = smtp.ehlo("tester.example.test")
        assert code == 250
        assert smtp.has_extn("pipelining") and smtp.has_extn("8bitmime") and smtp.has_extn("smtputf8")
        assert smtp.esmtp_features["size"] == "20000"


def test_relay_is_refused_from_outside_mynetworks(daemon: Daemon) -> None:
    with client(OUTSIDE) as smtp:
        smtp.ehlo("outside.example.org")
        smtp.mail("someone@outside.example.org")
        code, text = smtp.rcpt("victim@elsewhere.example.org")
        assert code == 554 and b"Relay access denied" in text
        assert smtp.rcpt("postmaster@example.test")[0] == 250  # a local domain is fine
    with client() as smtp:  # from inside mynetworks, relaying is allowed
        smtp.ehlo("inside.example.test")
        smtp.mail("app@example.test")
        assert smtp.rcpt("someone@elsewhere.example.org")[0] == 250


def test_recipient_and_size_limits(daemon: Daemon) -> None:
    with client() as smtp:
        smtp.ehlo("tester.example.test")
        smtp.mail("app@example.test")
        assert [smtp.rcpt(f"r{n}@remote.example.org")[0] for n in range(4)] == [250, 250, 250, 452]
        smtp.rset()
        smtp.mail("app@example.test")
        smtp.rcpt("r@remote.example.org")
        code, _ = smtp.data(b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 300)
        assert code == 552
    assert daemon.queued() == []


def test_accepted_message_is_queued_private_with_completed_headers(daemon: Daemon) -> None:
    with client() as smtp:
        smtp.ehlo("tester.example.test")
        smtp.mail("app")  # a bare address is qualified with $myorigin
        smtp.rcpt("someone@remote.example.org")
        code, text = smtp.data(b"Subject: hello\r\n\r\nbody\r\n")
    assert code == 250 and b"queued as" in text
    daemon.stop()
    (path,) = daemon.queued()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    envelope, data = read_message(path)
    assert envelope.sender == "app@mta.example.test" and envelope.recipients == ["someone@remote.example.org"]
    assert envelope.queue_id in text.decode() and envelope.helo == "tester.example.test"
    for header in (b"From: app@mta.example.test", b"Date: ", b"Message-ID: <"):
        assert header in data
    received = f"Received: from tester.example.test (unknown [{ADDRESS}])\r\n\tby mta.example.test (provision-mta) with ESMTP"
    received += f" id {envelope.queue_id};"
    assert data.startswith(received.encode())
    assert data.endswith(b"Subject: hello\r\n\r\nbody\r\n")


def test_a_mail_loop_is_refused_past_the_hop_limit(daemon: Daemon) -> None:
    looping = b"".join(b"Received: from a (b [127.0.0.1])\r\n\tby c; Wed, 25 Nov 2026 10:00:00 +0000\r\n" for _ in range(51))
    with client() as smtp:
        smtp.ehlo("tester.example.test")
        smtp.mail("a@example.test")
        smtp.rcpt("someone@remote.example.org")
        code, text = smtp.data(looping + b"Subject: again\r\n\r\nbody\r\n")
    assert code == 554 and b"too many hops" in text
    assert daemon.queued() == []


def test_unsupported_parameter_is_one_clear_warning(tmp_path: Path) -> None:
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    write_main_cf(running.config_directory, running.queue, header_checks="regexp:/etc/postfix/header_checks")
    running.start()
    output = running.stop()
    assert output.count("warning: header_checks is not supported") == 1
    assert "smtpd_client_restrictions is not supported" in output


def test_no_acknowledged_message_is_lost_across_kill_9(daemon: Daemon) -> None:
    """2,000 messages from 20 concurrent clients while the daemon is killed
    with SIGKILL three times and restarted: every message that got 250 is in
    the queue, and none is there twice."""
    acknowledged = load_with_kills(daemon)
    daemon.stop()

    found: dict[str, int] = {}
    for path in daemon.queued():
        _envelope, data = read_message(path)
        message_id = data.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
        found[message_id] = found.get(message_id, 0) + 1
    print(f"acknowledged {len(acknowledged)}; in the queue {len(found)}")
    missing = acknowledged - set(found)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    assert all(count == 1 for count in found.values())


@pytest.fixture
def tls_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The daemon with a certificate made by real OpenSSL, as the ssl role would provide one."""
    key, cert = self_signed(tmp_path, "mta.example.test")
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    write_main_cf(running.config_directory, running.queue, smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key))
    running.start()
    yield running
    running.stop_if_running()


def test_swaks_pipelines_over_starttls_and_8bit_arrives_intact(tls_daemon: Daemon, tmp_path: Path) -> None:
    body = "Subject: Grüße\r\n\r\nÄpfel und Birnen, 8 bit.\r\n"
    (tmp_path / "message").write_bytes(body.encode())
    done = subprocess.run(
        ["swaks", "--server", f"{ADDRESS}:{PORT}", "--ehlo", "swaks.example.test", "--from", "a@example.test",
         "--to", "b@remote.example.org,c@remote.example.org", "--pipeline", "-tls", "--data", str(tmp_path / "message")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250-PIPELINING" in done.stdout and "TLS started" in done.stdout and "250 2.0.0 Ok: queued as" in done.stdout
    tls_daemon.stop()
    (path,) = tls_daemon.queued()
    envelope, data = read_message(path)
    assert envelope.recipients == ["b@remote.example.org", "c@remote.example.org"]
    assert body.encode() in data and b"with ESMTPS id" in data


def test_smtputf8_addresses_and_8bitmime_are_accepted(daemon: Daemon) -> None:
    message = "From: jürgen@example.test\r\nSubject: ü\r\n\r\nüber\r\n".encode()
    with client() as smtp:
        smtp.ehlo("tester.example.test")
        assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime")
        refused = smtp.sendmail("jürgen@example.test", ["zoë@remote.example.org"], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}
    daemon.stop()
    (path,) = daemon.queued()
    envelope, data = read_message(path)
    assert envelope.sender == "jürgen@example.test" and envelope.recipients == ["zoë@remote.example.org"]
    assert data.endswith("über\r\n".encode())


def test_an_idle_client_is_dropped_after_smtpd_timeout(tmp_path: Path) -> None:
    running = Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS)
    write_main_cf(running.config_directory, running.queue, smtpd_timeout="2s")
    running.start()
    try:
        with socket.create_connection((ADDRESS, PORT), timeout=10) as idle:
            idle.settimeout(10)
            banner = idle.recv(1024)
            assert banner.startswith(b"220 ")
            started = time.monotonic()
            said = b""
            while chunk := idle.recv(1024):  # nothing sent: the server says so and hangs up
                said += chunk
            assert 1.5 < time.monotonic() - started < 8
            assert said.startswith(b"421 4.4.2 mta.example.test Error: timeout exceeded")
    finally:
        running.stop()
