"""Relay and recipients, tried as an attacker would (issue 13, points 1 and 2):
raw bytes over a socket to provision-mta and, beside it, to a real Postfix
started with the same main.cf, from a client outside mynetworks.

Relay is decided on the address as it will be routed (quoted local parts
holding @ % !, source routes, bang paths, percent hacks, domain literals,
upper case, trailing dots), and what is delivered is what was judged. An
unknown local recipient gets 550 5.1.1 at RCPT, so no bounce can go to a
forged sender (backscatter).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provision_mta.address import AddressError, Routing, route
from tests.support.mta import Daemon, Raw, main_cf, mta, running, smtp_client, wait_until
from tests.support.mta_compare import Pair, pair
from tests.support.smtp_sink import SmtpSink

MTA, POSTFIX, MTA2 = "127.81.10.1", "127.81.10.2", "127.81.10.3"
INSIDE = "127.81.10.5"
OUTSIDE = "127.81.210.5"
SINK, SINK_PORT = "127.81.10.10", 2599
SETTINGS = {
    "myhostname": "mta.example.test",
    "mydestination": "$myhostname, example.test",
    "mynetworks": "127.81.10.0/24",
    # A next hop: for Postfix a closed port (nothing it accepts leaves), for provision-mta the sink where needed.
    "relayhost": f"[{SINK}]:{SINK_PORT}",
}
ALIASES = "postmaster: root\nabuse: root\n"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("relay")
    spool = folder / "mail"
    with pair(folder, MTA, POSTFIX, SETTINGS, ALIASES, home_mailbox="", mail_spool_directory=str(spool)) as both:
        yield both


def verdict(reply: tuple[int, str]) -> str:
    code, text = reply
    if code == 250:
        return "accepted"
    if "Relay access denied" in text and code >= 400:
        return "relay refused"
    if code == 550 and "5.1.1" in text:
        return "unknown user"
    if code == 501:
        return "bad syntax"
    return f"other: {code} {text}"


def rcpt(both: Pair, recipient: bytes, source: str = OUTSIDE) -> dict[str, str]:
    """What each server answers to RCPT TO:<recipient> (``{OWN}`` is each server's own address)."""
    answers = {}
    for which, own in (("mta", MTA), ("postfix", POSTFIX)):
        with both.raw(which, source) as raw:
            assert raw.code(b"EHLO attacker.example.org") == 250
            assert raw.code(b"MAIL FROM:<forged@victim.example.org>") == 250
            answers[which] = verdict(raw.command(b"RCPT TO:<" + recipient.replace(b"{OWN}", own.encode()) + b">"))
    return answers


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (b'"user@other.example.org"@example.test', "relay refused"),
        (b"user@other.example.org@example.test", "relay refused"),
        (b"user%other.example.org@example.test", "relay refused"),
        (b'"user%other.example.org"@example.test', "relay refused"),
        (b"user%other.example.org%example.test@example.test", "relay refused"),
        (b"other.example.org!user@example.test", "relay refused"),
        (b'"other.example.org!user"@example.test', "relay refused"),
        (b"@example.test:user@other.example.org", "relay refused"),
        (b"@example.test,@mta.example.test:user@other.example.org", "relay refused"),
        (b"user@OTHER.EXAMPLE.ORG.", "relay refused"),
        (b"user@[127.81.9.9]", "relay refused"),
        (b'"root@other.example.org"@EXAMPLE.TEST.', "relay refused"),
        # Ours, however written: accepted as Postfix accepts them.
        (b"ROOT@EXAMPLE.TEST.", "accepted"),
        (b'"root"@example.test', "accepted"),
        (b"root%example.test@example.test", "accepted"),
        (b"example.test!root@mta.example.test", "accepted"),
        (b"@other.example.org:root@example.test", "accepted"),
        (b"root@[{OWN}]", "accepted"),
        (b"postmaster", "accepted"),
        (b"abuse@example.test", "accepted"),
        # Nobody here (point 2): refused at RCPT, as Postfix's local_recipient_maps does.
        (b"nosuch@example.test", "unknown user"),
        (b"nosuch@mta.example.test", "unknown user"),
        (b'"no such"@example.test', "unknown user"),
        (b"nosuch%example.test@example.test", "unknown user"),
        ("jürgen@example.test".encode(), "unknown user"),
    ],
)
def test_relay_and_recipients_are_judged_as_postfix_judges_them(servers: Pair, recipient: bytes, expected: str) -> None:
    answers = rcpt(servers, recipient)
    assert answers == {"mta": expected, "postfix": expected}


def test_inside_mynetworks_relaying_is_allowed_but_unknown_local_users_are_not(servers: Pair) -> None:
    assert rcpt(servers, b'"user@other.example.org"@example.test', INSIDE) == {"mta": "accepted", "postfix": "accepted"}
    assert rcpt(servers, b"nosuch@example.test", INSIDE) == {"mta": "unknown user", "postfix": "unknown user"}


def test_nothing_reaches_the_next_hop_from_outside_and_no_bounce_is_made(servers: Pair) -> None:
    """The whole transaction from outside: every trick refused, the local
    recipient accepted; the sink (the relayhost) gets nothing, neither the
    message nor a bounce to the forged sender."""
    tricks = [b'"user@other.example.org"@example.test', b"user%other.example.org@example.test", b"other.example.org!user@example.test"]
    with SmtpSink(SINK, SINK_PORT) as sink, Raw(MTA, source=OUTSIDE) as raw:
        codes = raw.message(
            b"forged@victim.example.org", [*tricks, b"nosuch@example.test", b"abuse@example.test"], b"Subject: x\r\n\r\nx\r\n.\r\n"
        )
        assert codes == [250, 250, 554, 554, 554, 550, 250, 354, 250]
        wait_until(lambda: not servers.mta.queued(), what="local delivery")
        assert sink.messages == []
    spool = servers.mta.config_directory.parent / "mail" / "root"
    assert b"Subject: x" in spool.read_bytes()


def test_what_is_delivered_is_the_address_that_was_judged(tmp_path: Path) -> None:
    """From inside mynetworks, a quoted local part holding @ is relayed: the next hop
    gets RCPT TO:<user@other.example.org>, the address intake resolved, not the
    quoted one (before: intake judged the domain after the last @, the queue
    manager routed on the local part)."""
    daemon = Daemon(tmp_path / "etc", tmp_path / "spool", MTA2)
    main_cf(daemon.config_directory, {**SETTINGS, "inet_interfaces": MTA2, "queue_directory": str(daemon.queue), "alias_maps": ""})
    with SmtpSink(SINK, SINK_PORT) as sink, running(daemon):
        with smtp_client(MTA2, source=INSIDE) as smtp:
            smtp.sendmail(
                "app@example.test",
                ['"user@other.example.org"@example.test', "u2%other.example.org@example.test"],
                b"Subject: r\r\n\r\nr\r\n",
            )
        done = mta(
            daemon.config_directory, "sendmail", "-f", "cron@example.test", "other.example.org!u3@example.test", stdin=b"Subject: s\n\ns\n"
        )
        assert done.returncode == 0, done.stderr
        received = sink.wait_for(2, timeout=30)
    recipients = sorted(r for message in received for r in message.recipients)
    assert recipients == ["u2@other.example.org", "u3@other.example.org", "user@other.example.org"]


@pytest.mark.parametrize(
    ("text", "local", "address"),
    [
        ('"a@b.example.org"@here.test', False, "a@b.example.org"),
        ("a%b.example.org@here.test", False, "a@b.example.org"),
        ("b.example.org!a@here.test", False, "a@b.example.org"),
        ("@x.example.org:a@here.test", True, "a@here.test"),
        ('"a b"@here.test', True, '"a b"@here.test'),
        ("A@HERE.TEST.", True, "A@here.test"),
        ('"a@b.example.org"@there.example.org', False, '"a@b.example.org"@there.example.org'),
    ],
)
def test_route_is_one_pure_function(text: str, local: bool, address: str) -> None:
    routing = Routing(lambda domain: domain == "here.test", "here.test")
    where = route(text, routing)
    assert (where.local, where.address) == (local, address)
    assert route(where.address, routing) == where  # what is stored routes the same way again


@pytest.mark.parametrize(
    "text", ["a b@here.test", "a\r@here.test", "a\n@here.test", "a\x00@here.test", '"a@here.test', "a@", "@x:", "a@b..c"]
)
def test_route_refuses_what_is_not_an_address(text: str) -> None:
    with pytest.raises(AddressError):
        route(text, Routing(lambda domain: domain == "here.test", "here.test"))
