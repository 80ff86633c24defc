"""Local submission and the operator commands of the built-in MTA: the
``sendmail`` command (-t, -f, Bcc removed, a lone dot without -i), pickup,
and hold / release / flush / delete on a live queue. Real daemon, real sink."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mta import Daemon, wait_until
from tests.support.mta import mta as mta_command
from tests.support.smtp_sink import SmtpSink

ADDRESS, PORT = "127.81.4.1", 2536
SINK, SINK_PORT = "127.81.4.10", 2537


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "etc", tmp_path / "spool", address=ADDRESS, port=PORT)
    running.config_directory.mkdir()
    settings = {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname",
        "inet_interfaces": ADDRESS,
        "queue_directory": str(running.queue),
        "relayhost": f"[{SINK}]:{SINK_PORT}",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "1s",
        "queue_run_delay": "1s",
    }
    (running.config_directory / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    running.start()
    yield running
    running.stop_if_running()


def mta(daemon: Daemon, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return mta_command(daemon.config_directory, *args, stdin=stdin)


def test_sendmail_t_delivers_to_every_header_recipient_and_drops_bcc(daemon: Daemon) -> None:
    message = (
        b"To: a@remote.example.org\nCc: b@remote.example.org\nBcc: hidden@remote.example.org\nSubject: local\n\nhi\n.\nnot part of it\n"
    )
    with SmtpSink(SINK, SINK_PORT) as sink:
        done = mta(daemon, "sendmail", "-t", "-f", "app@example.test", stdin=message)
        assert done.returncode == 0, done.stderr
        (received,) = sink.wait_for(1, timeout=30)
    assert sorted(received.recipients) == ["a@remote.example.org", "b@remote.example.org", "hidden@remote.example.org"]
    assert received.sender == "app@example.test" and received.subject == "local"
    assert b"Bcc:" not in received.content and b"hidden@" not in received.content
    assert received.content.endswith(b"\r\nhi\r\n") and b"not part of it" not in received.content
    assert b"From: app@example.test" in received.content and b"Message-ID: <" in received.content


def test_sendmail_without_recipients_is_refused(daemon: Daemon) -> None:
    done = mta(daemon, "sendmail", stdin=b"Subject: nobody\n\nhi\n")
    assert done.returncode != 0 and b"no recipients" in done.stderr


def test_hold_release_flush_delete(daemon: Daemon) -> None:
    for number in range(3):
        assert mta(daemon, "sendmail", "-i", f"r{number}@remote.example.org", stdin=b"Subject: q\n\nhi\n").returncode == 0

    def counts() -> dict[str, int]:
        return dict(json.loads(mta(daemon, "queue", "count").stdout))

    wait_until(lambda: counts()["deferred"] == 3)  # the next hop is down
    assert b"hold: 3 message(s)" in mta(daemon, "queue", "hold", "ALL").stdout
    listing = mta(daemon, "queue", "list").stdout.decode()
    assert listing.count("!") == 3 and "r0@remote.example.org" in listing
    with SmtpSink(SINK, SINK_PORT) as sink:
        time.sleep(3)  # held mail is not retried, sink or not
        assert sink.messages == []
        queue_id = listing.split("!", 1)[0].split()[-1]
        assert b"release: 1 message(s)" in mta(daemon, "queue", "release", queue_id).stdout
        sink.wait_for(1, timeout=20)
    assert b"release: 2 message(s)" in mta(daemon, "queue", "release").stdout
    wait_until(lambda: counts()["deferred"] == 2)
    assert b"delete: 2 message(s)" in mta(daemon, "queue", "delete", "ALL").stdout
    assert sum(counts().values()) == 0
    assert b"Mail queue is empty" in mta(daemon, "queue", "list").stdout


def test_local_mail_to_an_mbox_in_the_spool_with_its_envelope(tmp_path: Path) -> None:
    """home_mailbox empty: Postfix's default, an mbox in mail_spool_directory."""
    running = Daemon(tmp_path / "etc", tmp_path / "spool", address="127.81.4.2", port=PORT)
    running.config_directory.mkdir()
    settings = {
        "myhostname": "mta.example.test",
        "inet_interfaces": running.address,
        "queue_directory": str(running.queue),
        "home_mailbox": "",
        "mail_spool_directory": str(tmp_path / "mail"),
        "alias_maps": f"hash:{running.config_directory}/aliases",
    }
    (running.config_directory / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (running.config_directory / "aliases").write_text("ops: root\n")
    running.start()
    try:
        done = mta(running, "sendmail", "-f", "cron@mta.example.test", "ops", stdin=b"Subject: nightly\n\nFrom the job\n")
        assert done.returncode == 0, done.stderr
        spool = tmp_path / "mail" / "root"
        wait_until(lambda: spool.exists() and b"nightly" in spool.read_bytes())
    finally:
        running.stop()
    text = spool.read_bytes().decode()
    assert text.startswith("From cron@mta.example.test  ")
    assert (
        "Return-Path: <cron@mta.example.test>\nDelivered-To: ops@mta.example.test\nReceived: by mta.example.test (provision-mta) id "
        in text
    )
    assert "\n>From the job\n" in text
