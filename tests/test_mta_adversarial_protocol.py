"""The SMTP dialogue, tried as an attacker would (issue 13, point 3): raw bytes
over a socket to provision-mta and, where it tells something, to a real Postfix
with the same main.cf.

CR, LF or NUL in EHLO, MAIL FROM or RCPT TO is refused (501) and can never
reach a header or the next hop; ``MAIL FROM:a b c`` gets Postfix's answer; a
bare CR or LF in message data is a line end by the time the message is
relayed; AUTH is neither offered nor accepted (no SASL here). SMTP smuggling
and STARTTLS command injection, which held before, stay held.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from provision_mta.queue import read_message
from tests.support.mta import Raw, mta, self_signed, wait_until
from tests.support.mta_compare import Pair, pair
from tests.support.smtp_sink import SmtpSink

MTA, POSTFIX = "127.81.11.1", "127.81.11.2"
INSIDE = "127.81.11.5"
SINK, SINK_PORT = "127.81.11.10", 2599


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("protocol")
    key, cert = self_signed(folder, "mta.example.test")
    settings = {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname",
        "mynetworks": "127.81.11.0/24",
        "relayhost": f"[{SINK}]:{SINK_PORT}",
        "smtpd_tls_cert_file": str(cert),
        "smtpd_tls_key_file": str(key),
        "smtpd_tls_security_level": "may",
        "minimal_backoff_time": "1s",
        "queue_run_delay": "1s",
    }
    with pair(folder, MTA, POSTFIX, settings, "postmaster: root\n") as both:
        yield both


def replies(both: Pair, lines: list[bytes]) -> dict[str, list[int]]:
    return {which: [code for code, _ in answers] for which, answers in both.replies(lines, INSIDE).items()}


@pytest.mark.parametrize(
    ("lines", "mta_codes", "postfix_agrees"),
    [
        # Postfix itself takes a CR or NUL in EHLO (and treats CR as a space in MAIL FROM); provision-mta refuses them.
        ([b"EHLO a\rb", b"MAIL FROM:<a@example.org>"], [501, 503], False),
        ([b"EHLO a\x00b", b"MAIL FROM:<a@example.org>"], [501, 503], False),
        ([b"HELO a\rb", b"MAIL FROM:<a@example.org>"], [501, 503], False),
        ([b"EHLO x", b"MAIL FROM:<a\r@example.org>"], [250, 501], False),
        ([b"EHLO x", b"MAIL FROM:<a\x00@example.org>"], [250, 501], True),
        ([b"EHLO x", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b\r@remote.example.org>"], [250, 250, 501], False),
        ([b"EHLO x", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b\x00@remote.example.org>"], [250, 250, 501], True),
        ([b"EHLO x", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b\t@remote.example.org>"], [250, 250, 501], False),
        # As Postfix: parameters after a bare address, spaces inside brackets.
        ([b"EHLO x", b"MAIL FROM:a b c"], [250, 555], True),
        ([b"EHLO x", b"MAIL FROM:<a b@example.org>"], [250, 501], True),
        ([b"EHLO x", b"MAIL FROM:<a@example.org> SIZE=99999999999"], [250, 552], True),
        ([b"EHLO x", b"MAIL FROM:<a@example.org>", b"MAIL FROM:<b@example.org>"], [250, 250, 503], True),
        ([b"EHLO x", b"MAIL FROM:<>", b"MAIL FROM:<b@example.org>"], [250, 250, 503], True),
        ([b"EHLO x", b"RCPT TO:<b@remote.example.org>"], [250, 503], True),
        ([b"EHLO x", b"AUTH PLAIN AGZvbwBiYXI="], [250, 503], True),
    ],
)
def test_the_dialogue_refuses_what_it_must(servers: Pair, lines: list[bytes], mta_codes: list[int], postfix_agrees: bool) -> None:
    codes = replies(servers, lines)
    assert codes["mta"] == mta_codes
    if postfix_agrees:
        assert codes["postfix"] == mta_codes


def test_a_refused_helo_name_never_reaches_a_header(servers: Pair) -> None:
    with Raw(MTA, source=INSIDE) as raw:
        assert raw.code(b"EHLO evil\rX-Injected: yes") == 501
        codes = raw.message(b"a@example.org", [b"postmaster@mta.example.test"], b"Subject: h\r\n\r\nh\r\n.\r\n", helo=b"good.example.org")
        assert codes == [250, 250, 250, 354, 250]
    wait_until(lambda: not servers.mta.queued(), what="local delivery")
    log = servers.mta.log.read_text()
    assert "X-Injected" not in log


def test_sendmail_refuses_line_ends_in_addresses(servers: Pair) -> None:
    for args in (["-f", "a@example.org\r\nX-Injected: yes", "postmaster"], ["postmaster\nRCPT TO:<x@remote.example.org>"]):
        done = mta(servers.mta.config_directory, "sendmail", *args, stdin=b"Subject: s\n\ns\n")
        assert done.returncode != 0 and b"bad address syntax" in done.stderr, done.stderr
    assert not servers.mta.queued()


def test_auth_is_not_offered_even_over_tls(servers: Pair) -> None:
    for which, address in (("mta", MTA), ("postfix", POSTFIX)):
        with Raw(address, source=INSIDE) as raw:
            code, offered = raw.command(b"EHLO x")
            assert code == 250 and "STARTTLS" in offered and "AUTH" not in offered, which
            assert raw.code(b"STARTTLS") == 220
            raw.buffer, raw.sock = b"", _tls(raw.sock)
            code, offered = raw.command(b"EHLO x")
            assert code == 250 and "AUTH" not in offered, (which, offered)
            assert raw.code(b"AUTH PLAIN AGZvbwBiYXI=") == 503, which


def _tls(sock: socket.socket) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(sock)


def test_starttls_command_injection_is_discarded(servers: Pair) -> None:
    """Plain text pipelined after STARTTLS (CVE-2011-0411's pattern) is thrown away:
    after the handshake, the first reply is the one to our NOOP, not an EHLO
    reply to the injected command."""
    for which, address in (("mta", MTA), ("postfix", POSTFIX)):
        with Raw(address, source=INSIDE) as raw:
            assert raw.code(b"EHLO x") == 250
            raw.send(b"STARTTLS\r\nEHLO injected.example.org\r\n")
            assert raw.reply()[0] == 220
            raw.buffer, raw.sock = b"", _tls(raw.sock)
            code, text = raw.command(b"NOOP")
            assert code == 250 and "\n" not in text, (which, text)
            if which == "mta":  # aiosmtpd wants a new EHLO after the handshake: none was taken
                assert raw.code(b"MAIL FROM:<a@example.org>") == 503


@pytest.mark.parametrize(
    "body",
    [
        b"Subject: s\r\n\r\nline\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<victim@remote.example.org>\nDATA\nsmuggled\n.\n",
        b"Subject: s\r\n\r\nline\r.\rMAIL FROM:<evil@example.org>\r\n",
        b"Subject: s\r\n\r\nline\r\n.\rMAIL FROM:<evil@example.org>\r\n",
        b"Subject: s\r\n\r\nline\n.\r\nMAIL FROM:<evil@example.org>\r\n",
        b"Subject: s\r\n\r\nline\r.\r\nMAIL FROM:<evil@example.org>\r\n",
    ],
)
def test_smuggling_and_bare_line_ends(servers: Pair, body: bytes) -> None:
    """Data whose line ends are bare CR or LF: one message, whole (no second one
    smuggled in), and every line end a CRLF by the time the next hop sees it."""
    with SmtpSink(SINK, SINK_PORT) as sink, Raw(MTA, source=INSIDE) as raw:
        codes = raw.message(b"a@example.org", [b"b@remote.example.org"], body + b"\r\n.\r\n")
        assert codes == [250, 250, 250, 354, 250]
        assert raw.code(b"QUIT") == 221
        (received,) = sink.wait_for(1, timeout=30)
        wait_until(lambda: not servers.mta.queued(), what="delivery")
        assert len(sink.messages) == 1
    assert received.recipients == ["b@remote.example.org"]
    assert b"MAIL FROM:<evil@example.org>" in received.content
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", received.content) is None


def test_long_lines_and_dots_survive_the_trip(servers: Pair) -> None:
    """A 3,000-byte line is taken (as Postfix takes it) and broken for the next hop
    as Postfix's smtp_line_length_limit does (CRLF and a space every 999 bytes)."""
    body = b"Subject: long\r\n\r\n" + b"x" * 3000 + b"\r\n..starts with a dot\r\n.\r\n"
    with SmtpSink(SINK, SINK_PORT) as sink, Raw(MTA, source=INSIDE) as raw:
        assert raw.message(b"a@example.org", [b"b@remote.example.org"], body) == [250, 250, 250, 354, 250]
        (received,) = sink.wait_for(1, timeout=30)
    assert received.subject == "long" and max(len(line) for line in received.content.split(b"\r\n")) <= 999
    assert b"x" * 3000 + b"\r\n.starts with a dot\r\n" in received.content.replace(b"\r\n ", b"")


def test_headers_are_completed_as_the_message_streams_in(servers: Pair) -> None:
    """Received first, then the missing From/Date/Message-ID, then the sender's headers, then the body."""
    config = servers.mta.config_directory
    try:
        with Raw(MTA, source=INSIDE) as raw:  # no sink: the message is deferred, then held to be read
            assert raw.message(b"app@example.org", [b"b@remote.example.org"], b"Subject: c\r\nX-A: 1\r\n\r\nbody\r\n.\r\n")[-1] == 250
        wait_until(lambda: servers.mta.queued(("deferred",)), what="deferral")
        wait_until(lambda: mta(config, "queue", "hold", "ALL") and servers.mta.queued(("hold",)), what="hold")
        (path,) = servers.mta.queued(("hold",))
        envelope, data = read_message(path)
    finally:
        mta(config, "queue", "delete", "ALL")
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"Received: from client.example.org (unknown [127.81.11.5])")
    names = [line.split(b":")[0] for line in lines if line and line[:1] not in (b" ", b"\t")]
    assert names[:6] == [b"Received", b"From", b"Date", b"Message-ID", b"Subject", b"X-A"]
    assert data.endswith(b"\r\n\r\nbody\r\n") and envelope.size == len(data)


def test_the_aiosmtpd_internals_smtpd_builds_on_are_there() -> None:
    """SmtpSession overrides smtp_MAIL/RCPT/DATA/AUTH and reads DATA from aiosmtpd's
    stream: if a new aiosmtpd renames these, this says so before a session breaks."""
    for name in ("smtp_MAIL", "smtp_RCPT", "smtp_DATA", "smtp_AUTH", "check_helo_needed", "push", "_set_post_data_state"):
        assert callable(getattr(SMTP, name, None)), name

    async def connected() -> object:
        session = SMTP(object(), hostname="x")
        server = await asyncio.get_running_loop().create_server(lambda: session, "127.81.11.20", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.81.11.20", port)
        await asyncio.sleep(0.1)
        reader = getattr(session, "_reader", None)
        writer.close()
        server.close()
        return reader

    assert isinstance(asyncio.run(connected()), asyncio.StreamReader)
