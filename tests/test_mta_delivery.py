"""The built-in MTA delivering: through master.cf transports chosen by
sender (each bound to its own loopback address, with its own HELO), deferral
while the next hop is down and delivery once it is back, and an RFC 3464
bounce to the sender when the queue lifetime runs out. Real daemon, real
SMTP, a real sink (aiosmtpd) on loopback."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision_mta.delivery import Hop, TlsFailed, open_session
from tests.support.mta import Daemon, relay_config, self_signed, smtp_client
from tests.support.smtp_sink import SmtpSink

ADDRESS = "127.81.2.1"
SINK, SINK_PORT = "127.81.2.10", 2527
OUT1, OUT2 = "127.81.2.21", "127.81.2.22"


def configure(daemon: Daemon, **extra: str) -> Daemon:
    relay_config(daemon.config_directory, daemon.queue, ADDRESS, SINK, SINK_PORT, (OUT1, OUT2), **extra)
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = configure(Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS))
    running.start()
    yield running
    running.stop_if_running()


def send(sender: str, recipient: str, subject: str) -> None:
    with smtp_client(ADDRESS) as smtp:
        smtp.sendmail(sender, [recipient], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())


def test_transport_chosen_by_sender_binds_its_address_and_helo(daemon: Daemon) -> None:
    with SmtpSink(SINK, SINK_PORT) as sink:
        send("letters@news.example.test", "reader@remote.example.org", "pinned")
        send("shop@other.example.test", "buyer@remote.example.org", "spread")
        received = {m.subject: m for m in sink.wait_for(2, timeout=30)}
    assert (received["pinned"].peer, received["pinned"].helo) == (OUT1, "out1.example.test")
    assert (received["spread"].peer, received["spread"].helo) == (OUT2, "out2.example.test")
    assert received["pinned"].sender == "letters@news.example.test" and received["pinned"].recipients == ["reader@remote.example.org"]


def test_deferred_while_the_next_hop_is_down_then_delivered(daemon: Daemon) -> None:
    send("letters@news.example.test", "reader@remote.example.org", "patience")
    deadline = time.monotonic() + 20
    while not list((daemon.queue / "deferred").iterdir()):
        assert time.monotonic() < deadline, "the message was never deferred"
        time.sleep(0.2)
    with SmtpSink(SINK, SINK_PORT) as sink:
        (message,) = sink.wait_for(1, timeout=30)
    assert message.subject == "patience" and message.peer == OUT1
    deadline = time.monotonic() + 10
    while daemon.queued():
        assert time.monotonic() < deadline, "delivered mail stayed in the queue"
        time.sleep(0.2)


def test_lifetime_passed_bounces_to_the_sender_once(tmp_path: Path) -> None:
    running = configure(Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS), maximal_queue_lifetime="2s")
    running.start()
    try:
        send("letters@news.example.test", "reader@remote.example.org", "too late")
        time.sleep(4)  # the next hop stays down past the lifetime
        with SmtpSink(SINK, SINK_PORT) as sink:
            (bounce,) = sink.wait_for(1, timeout=30)
            time.sleep(2)  # nothing else may arrive: not the original, not a bounce of the bounce
            assert len(sink.messages) == 1
    finally:
        running.stop()
    assert bounce.sender in ("", "<>") and bounce.recipients == ["letters@news.example.test"]  # the null sender
    assert bounce.subject == "Undelivered Mail Returned to Sender"


def test_outbound_starttls_is_used_when_the_next_hop_offers_it(daemon: Daemon, tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path, "sink.example.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with SmtpSink(SINK, SINK_PORT, tls_context=context) as sink:
        send("a@example.test", "reader@remote.example.org", "over tls")
        (received,) = sink.wait_for(1, timeout=30)
    assert received.tls and received.subject == "over tls"


def test_no_more_deliveries_to_one_destination_at_once_than_its_concurrency_limit(tmp_path: Path) -> None:
    running = configure(Daemon(tmp_path / "etc", tmp_path / "spool", ADDRESS), default_destination_concurrency_limit="3")
    running.start()
    try:
        with SmtpSink(SINK, SINK_PORT, delay=0.3) as sink:
            for number in range(15):
                send("a@example.test", f"reader{number}@remote.example.org", f"number {number}")
            sink.wait_for(15, timeout=60)
    finally:
        running.stop()
    assert sink.handler.most_in_flight == 3  # reached, never passed


def test_starttls_names_the_peer_by_the_address_it_connects_to(tmp_path: Path) -> None:
    """open_session gives smtplib the hop's address at construction, which smtplib
    uses as the TLS peer's name (it used to be set through smtplib's private _host).
    With verification on and a certificate for the address, the handshake succeeds;
    for another address it fails: if smtplib ever named the peer otherwise, this says so."""
    for_sink = self_signed(tmp_path, "sink", alt=f"IP:{SINK}")
    for_other = self_signed(tmp_path, "other", alt="IP:127.81.2.99")
    results = {}
    for name, (key, cert) in (("right", for_sink), ("wrong", for_other)):
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(cert, key)
        with SmtpSink(SINK, SINK_PORT, tls_context=serving):
            verifying = ssl.create_default_context(cafile=str(cert))  # check_hostname and CERT_REQUIRED
            try:
                client = open_session(Hop("sink.example.test", SINK, SINK_PORT), "", "tester.example.test", 10, verifying)
            except TlsFailed as exc:
                results[name] = f"failed: {exc.__cause__}"
                continue
            results[name] = "verified" if isinstance(client.sock, ssl.SSLSocket) else "plain"
            client.quit()
    assert results["right"] == "verified"
    assert results["wrong"].startswith("failed:") and "127.81.2.10" in results["wrong"]
