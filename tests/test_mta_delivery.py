"""The built-in MTA delivering: through master.cf transports chosen by
sender (each bound to its own loopback address, with its own HELO), deferral
while the next hop is down and delivery once it is back, and an RFC 3464
bounce to the sender when the queue lifetime runs out. Real daemon, real
SMTP, a real sink (aiosmtpd) on loopback."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.smtp_sink import SmtpSink
from tests.test_mta_intake import ADDRESS, Daemon, client

SINK, SINK_PORT = "127.77.1.1", 2527
OUT1, OUT2 = "127.77.2.1", "127.77.2.2"


def configure(folder: Path, queue: Path, **extra: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname",
        "mynetworks": "127.0.0.0/8",
        "inet_interfaces": ADDRESS,
        "queue_directory": str(queue),
        "relayhost": f"[{SINK}]:{SINK_PORT}",
        "sender_dependent_default_transport_maps": f"hash:{folder}/sender_transport, randmap:{{out2}}",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
        **extra,
    }
    (folder / "main.cf").write_text("".join(f"{name} = {value}\n" for name, value in settings.items()))
    service = "unix  -       -       n       -       -       smtp"
    (folder / "master.cf").write_text(
        f"smtp      {service}\n"
        f"out1      {service}\n  -o smtp_bind_address={OUT1}\n  -o smtp_helo_name=out1.example.test\n"
        f"out2      {service}\n  -o {{ smtp_bind_address = {OUT2} }}\n  -o smtp_helo_name=out2.example.test\n"
    )
    (folder / "sender_transport").write_text("@news.example.test out1:\n")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "etc", tmp_path / "spool")
    configure(running.config_directory, running.queue)
    running.start()
    yield running
    running.stop_if_running()


def send(sender: str, recipient: str, subject: str) -> None:
    with client() as smtp:
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
    running = Daemon(tmp_path / "etc", tmp_path / "spool")
    configure(running.config_directory, running.queue, maximal_queue_lifetime="2s")
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
    key, cert = tmp_path / "sink.key", tmp_path / "sink.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=sink.example.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with SmtpSink(SINK, SINK_PORT, tls_context=context) as sink:
        send("a@example.test", "reader@remote.example.org", "over tls")
        (received,) = sink.wait_for(1, timeout=30)
    assert received.tls and received.subject == "over tls"


def test_no_more_deliveries_to_one_destination_at_once_than_its_concurrency_limit(tmp_path: Path) -> None:
    running = Daemon(tmp_path / "etc", tmp_path / "spool")
    configure(running.config_directory, running.queue, default_destination_concurrency_limit="3")
    running.start()
    try:
        with SmtpSink(SINK, SINK_PORT, delay=0.3) as sink:
            for number in range(15):
                send("a@example.test", f"reader{number}@remote.example.org", f"number {number}")
            sink.wait_for(15, timeout=60)
    finally:
        running.stop()
    assert sink.handler.most_in_flight == 3  # reached, never passed
