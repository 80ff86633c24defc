"""aliases(5) expansion and Maildir delivery of the built-in MTA (pure parts),
then an alias to a remote address and a refused pipe through the real daemon."""

from __future__ import annotations

import mailbox
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from provision_mta.address import Routing
from provision_mta.aliases import expand, parse_aliases
from provision_mta.delivery import maildir_deliver, mbox_deliver
from tests.support.mta import Daemon, mta
from tests.support.smtp_sink import SmtpSink

ALIASES = """\
# comment
postmaster: root
abuse: postmaster, ops@remote.example.org
team: alice,
  bob, "|/usr/bin/procmail"
loop1: loop2
loop2: loop1
listed: :include:{include}
"""


@pytest.fixture
def table(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "list").write_text("carol\ndave@remote.example.org\n")
    return parse_aliases(ALIASES.format(include=tmp_path / "list"))


def local(domain: str) -> bool:
    return domain in ("mta.example.test", "localhost")


ROUTING = Routing(local, "mta.example.test")


@pytest.mark.parametrize(
    ("name", "allow", "users", "remote", "refused"),
    [
        ("postmaster", set(), ["root"], [], []),
        ("abuse", set(), ["root"], ["ops@remote.example.org"], []),
        ("team", set(), ["alice", "bob"], [], ["|/usr/bin/procmail"]),
        ("loop1", set(), [], [], []),
        ("listed", set(), [], [], ["listed-include"]),
        ("listed", {"alias"}, ["carol"], ["dave@remote.example.org"], []),
        ("nobody-special", set(), ["nobody-special"], [], []),
    ],
)
def test_expansion(
    table: dict[str, list[str]], name: str, allow: set[str], users: list[str], remote: list[str], refused: list[str]
) -> None:
    result = expand(name, table, ROUTING, allow, use_forward=False)
    assert (result.local_users, result.remote) == (users, remote)
    targets = [target for target, _why in result.refused]
    if refused == ["listed-include"]:
        assert len(targets) == 1 and targets[0].startswith(":include:")
    else:
        assert targets == refused


def test_maildir_delivery_is_durable_and_private(tmp_path: Path) -> None:
    maildir_deliver(tmp_path / "Maildir", b"Subject: hi\r\n\r\nbody\r\n", os.getuid(), os.getgid())
    (delivered,) = (tmp_path / "Maildir" / "new").iterdir()
    assert delivered.read_bytes() == b"Subject: hi\r\n\r\nbody\r\n"
    assert stat.S_IMODE(delivered.stat().st_mode) == 0o600 and not list((tmp_path / "Maildir" / "tmp").iterdir())


def test_mbox_delivery_appends_quoted_messages_that_a_mail_reader_splits_back(tmp_path: Path) -> None:
    mbox = tmp_path / "mail" / "ops"
    first = b"Subject: one\r\n\r\nFrom here on\r\n>From there\r\n"
    mbox_deliver(mbox, "a@example.test", first, os.getuid(), os.getgid())
    mbox_deliver(mbox, "", b"Subject: two\n\nno newline at the end")
    text = mbox.read_bytes()
    assert text.startswith(b"From a@example.test  ") and b"\r" not in text
    assert b"\n>From here on\n>>From there\n" in text  # mboxrd quoting
    assert stat.S_IMODE(mbox.stat().st_mode) == 0o600 and not (tmp_path / "mail" / "ops.lock").exists()
    messages = list(mailbox.mbox(str(mbox)))
    assert [m["Subject"] for m in messages] == ["one", "two"]
    assert messages[1].get_from().startswith("MAILER-DAEMON ")
    assert messages[0].get_payload() == ">From here on\n>>From there\n"


def test_mbox_waits_for_another_programs_dot_lock(tmp_path: Path) -> None:
    mbox = tmp_path / "ops"
    lock = tmp_path / "ops.lock"
    lock.touch()
    releaser = threading.Timer(0.5, lock.unlink)
    releaser.start()
    started = time.monotonic()
    mbox_deliver(mbox, "a@example.test", b"Subject: x\n\nbody\n")
    assert time.monotonic() - started >= 0.4 and mbox.read_bytes().count(b"\nFrom ") == 0
    releaser.join()


def test_alias_to_a_remote_address_and_a_refused_pipe_through_the_daemon(tmp_path: Path) -> None:
    sink_address, sink_port = "127.81.5.10", 2547
    running = Daemon(tmp_path / "etc", tmp_path / "spool", address="127.81.5.1", port=2546)
    running.config_directory.mkdir()
    (running.config_directory / "aliases").write_text("abuse: ops@remote.example.org\nrobot: |/usr/bin/true\n")
    settings = {
        "myhostname": "mta.example.test",
        "inet_interfaces": running.address,
        "queue_directory": str(running.queue),
        "relayhost": f"[{sink_address}]:{sink_port}",
        "alias_maps": f"hash:{running.config_directory}/aliases",
    }
    (running.config_directory / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    with SmtpSink(sink_address, sink_port) as sink:
        running.start()
        try:
            # Given directly and reached again through the alias: one RCPT.
            report = mta(
                running.config_directory,
                "sendmail",
                "-f",
                "app@remote.example.org",
                "abuse",
                "ops@remote.example.org",
                stdin=b"Subject: report\n\nhi\n",
            )
            assert report.returncode == 0
            assert (
                mta(running.config_directory, "sendmail", "-f", "app@remote.example.org", "robot", stdin=b"Subject: run\n\nhi\n").returncode
                == 0
            )
            received = {m.subject: m for m in sink.wait_for(2, timeout=30)}
        finally:
            running.stop()
    assert received["report"].recipients == ["ops@remote.example.org"]
    bounce = received["Undelivered Mail Returned to Sender"]
    assert bounce.recipients == ["app@remote.example.org"] and b"mail to commands is not allowed" in bounce.content
