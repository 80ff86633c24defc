"""SMTP intake on aiosmtpd: Postfix's relay rules and limits, then the durable queue.

Not an open relay: every recipient is resolved with :func:`address.route`
(the function the queue manager delivers with), and one that is not ours is
accepted only from a client in ``mynetworks`` (554 otherwise). A local
recipient nobody has (``local_recipient_maps``: passwd and aliases) gets 550
at RCPT, so that no bounce ever goes to a forged sender (backscatter).
Addresses and HELO names with a control character (CR, LF, NUL...) get 501.
More recipients than ``smtpd_recipient_limit`` get 452; a message over
``message_size_limit`` gets 552 (SIZE is advertised); MAIL FROM gets 452
when the queue's file system has less free space than ``queue_minfree``
(at least 1.5 x message_size_limit). AUTH is never offered (no SASL here).
250 is sent only after the group commit made the message durable (see ``queue``).

aiosmtpd reads commands, does STARTTLS and parses ESMTP; MAIL, RCPT and DATA
are this module's own (Postfix's syntax and answers; DATA streamed to the queue
file so that a session holds a buffer, never a whole message). What it uses of
aiosmtpd beyond its documented hooks is in :class:`SmtpSession` alone and
pinned by tests/test_mta_protocol.py.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pwd
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from provision_mta.address import AddressError, parse_mailbox, route, split_path
from provision_mta.aliases import load_aliases
from provision_mta.cleanup import HOPCOUNT_LIMIT, Cleanup, qualify, received_line
from provision_mta.config import MtaConfig
from provision_mta.master_cf import sender_map
from provision_mta.queue import Envelope, GroupCommitter, IncomingFile, new_queue_id

# aiosmtpd's own idle timer restarts only at a valid command, so it would cut off
# a long DATA; SmtpSession keeps smtpd_timeout per read instead.
_NEVER = 10.0**9
_CONTROL = re.compile(r"[\x00-\x1f\x7f]|[\ud800-\udfff]")
_COMMAND_NAMES: dict[type, list[str]] = {}


class Intake:
    """What the sessions of one intake process share: settings, who exists locally, the committer."""

    def __init__(self, config: MtaConfig, committer: GroupCommitter, on_queued: Callable[[], None] = lambda: None) -> None:
        self.committer, self.on_queued = committer, on_queued
        self.in_data = 0
        """Sessions between DATA and its answer: a stopping process waits for them."""
        self.reload(config)

    def reload(self, config: MtaConfig) -> None:
        self.config = config
        self.tls = tls_context(config)
        self.aliases = load_aliases(config)
        self.tables: list[dict[str, str]] = []
        self.passwd = False
        for item in config.local_recipient_maps:
            kind, _, source = item.partition(":")
            if item == "unix:passwd.byname":
                self.passwd = True
            elif Path(source) in config.alias_files:
                self.tables.append({name: "" for name in self.aliases})
            elif kind in ("hash", "lmdb", "texthash", "cdb") and Path(source).exists():
                self.tables.append(sender_map(Path(source).read_text()))

    def __dir__(self) -> list[str]:
        # aiosmtpd's SMTP() looks for its hooks with dir() and inspect.getmembers() on the
        # handler, for every connection: only the hook names, so that costs nothing.
        return _HOOK_NAMES

    def known_local(self, user: str, address: str) -> bool:
        """Postfix's local_recipient_maps: the name (or the full address) is in a table; an empty setting means everyone."""
        if not self.config.local_recipient_maps:
            return True
        if any(user in table or address.lower() in table for table in self.tables):
            return True
        if self.passwd:
            try:
                pwd.getpwnam(user)
            except KeyError:
                return False
            return True
        return False

    def free_space(self) -> int:
        stat = os.statvfs(self.config.queue_directory)
        return stat.f_bavail * stat.f_frsize

    # aiosmtpd calls these hooks by name (its documented handler interface).

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str, responses: list[str]) -> list[str]:
        if _CONTROL.search(hostname) or " " in hostname:
            session.host_name = None
            return ["501 5.5.2 Syntax: EHLO hostname"]
        session.host_name = hostname
        # aiosmtpd reads pipelined commands correctly; it just does not say so. AUTH: never (no SASL here).
        kept = [line for line in responses[:-1] if not line[4:].upper().startswith("AUTH")]
        return [*kept, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_HELO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str) -> str:
        if _CONTROL.search(hostname) or " " in hostname:
            session.host_name = None
            return "501 5.5.2 Syntax: HELO hostname"
        session.host_name = hostname
        return f"250 {self.config.myhostname}"


# aiosmtpd reads handle_EHLO's signature for every connection; a stored one is read at once (PEP 362).
Intake.handle_EHLO.__signature__ = inspect.signature(Intake.handle_EHLO)  # type: ignore[attr-defined]
_HOOK_NAMES = sorted(name for name in dir(Intake) if name.startswith(("handle_", "auth_")))


def tls_context(config: MtaConfig) -> ssl.SSLContext | None:
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return context


def _parameters(words: list[str], allowed: dict[str, Callable[[str | None], bool]]) -> tuple[dict[str, str | None], str]:
    """ESMTP parameters: (name → value), or the first one refused (its text)."""
    found: dict[str, str | None] = {}
    for word in words:
        name, equals, value = word.partition("=")
        check = allowed.get(name.upper())
        if check is None or not check(value if equals else None):
            return found, word
        found[name.upper()] = value if equals else None
    return found, ""


class SmtpSession(SMTP):
    """One client's session. Built on aiosmtpd's ``SMTP`` and these parts of it
    beyond the documented hooks (tests/test_mta_protocol.py pins them): the
    ``smtp_<COMMAND>`` methods it dispatches to, ``push``, ``session``,
    ``envelope``, ``check_helo_needed``, ``_set_post_data_state`` (a new
    envelope after DATA), ``_reader`` (the stream DATA is read from), and
    ``_reset_timeout``/``_timeout_handle`` (its idle timer, armed once).
    aiosmtpd's ``SMTP()`` finds the ``smtp_``/``auth_`` methods with ``dir()``."""

    def __init__(self, intake: Intake, on_close: Callable[[], None] = lambda: None) -> None:
        config = intake.config
        super().__init__(
            intake,
            hostname=config.myhostname,
            data_size_limit=config.message_size_limit,
            enable_SMTPUTF8=True,
            tls_context=intake.tls,
            timeout=_NEVER,
            ident="provision-mta",
        )
        self.intake, self.config, self._on_close = intake, config, on_close
        self._last_read = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._ended = False

    def __dir__(self) -> list[str]:
        # aiosmtpd's SMTP() builds its command table with dir() and inspect.getmembers() on
        # the session, for every connection (about 0.2 ms of 137 attributes): only the
        # command and AUTH methods it looks for, the rest of dir() being of no use here.
        names = _COMMAND_NAMES.get(type(self))
        if names is None:
            names = _COMMAND_NAMES[type(self)] = sorted(n for n in object.__dir__(self) if n.startswith(("smtp_", "auth_")))
        return names

    # smtpd_timeout, per read as in Postfix: a client that keeps sending is never cut off.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._idle is None
        super().connection_made(transport)
        self._last_read = self.loop.time()
        if first:
            self._idle = self.loop.call_later(self.config.smtpd_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)

    def eof_received(self) -> bool | None:
        # aiosmtpd cancels the session's handler here and keeps the connection half open
        # for writing, leaving its closing to the handler; a handler cancelled before its
        # first step (a client gone before the banner: uvloop reports that EOF at once)
        # never closes it, and the session would hold its slot until smtpd_timeout. A
        # client that stopped sending cannot send another command: closed now.
        super().eof_received()
        return False

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd re-arms its own idle timer at every command (a timer made, one cancelled);
        # here it never fires (smtpd_timeout is per read, above), so it is armed once, for
        # aiosmtpd's connection_lost to cancel.
        if self._timeout_handle is None:
            super()._reset_timeout(duration)

    def _check_idle(self) -> None:
        idle = self.loop.time() - self._last_read
        if idle < self.config.smtpd_timeout:
            self._idle = self.loop.call_later(self.config.smtpd_timeout - idle, self._check_idle)
            return
        self.time_out()

    def idle_for(self) -> float:
        return self.loop.time() - self._last_read

    def time_out(self) -> None:
        """Postfix's answer to a client that said nothing for too long, then the end of the session."""
        if self.transport is not None and not self.transport.is_closing():
            # A cast, not an isinstance check: uvloop's transports have asyncio's methods without its classes.
            transport = cast(asyncio.WriteTransport, self.transport)
            transport.write(f"421 4.4.2 {self.config.myhostname} Error: timeout exceeded\r\n".encode())
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        super().connection_lost(error)
        if not self._ended:
            self._ended = True
            self._on_close()

    def _client(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else ""

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("503 5.5.1 Error: authentication not enabled")

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        if not arg or arg[:5].upper() != "FROM:":
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        try:
            address, rest = split_path(arg[5:])
            sender = str(parse_mailbox(address)) if address else ""
        except AddressError:
            await self.push("501 5.1.7 Bad sender address syntax")
            return
        limit = self.config.message_size_limit
        options, refused = _parameters(
            rest.split(),
            {
                "SIZE": lambda v: v is not None and v.isdigit(),
                "BODY": lambda v: v is not None and v.upper() in ("7BIT", "8BITMIME"),
                "SMTPUTF8": lambda v: v is None,
            },
        )
        if refused:
            await self.push(f"555 5.5.4 Unsupported option: {refused}")
            return
        size = int(options.get("SIZE") or 0)
        if limit and size > limit:
            await self.push("552 5.3.4 Message size exceeds fixed limit")
            return
        if self.intake.free_space() < self.config.minimum_free_space + size:
            await self.push("452 4.3.1 Insufficient system storage")
            return
        self.envelope.mail_from = qualify(sender, self.config.myorigin)
        self.envelope.mail_options = rest.split()
        await self.push("250 2.1.0 Ok")

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if not arg or arg[:3].upper() != "TO:":
            await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        try:
            address, rest = split_path(arg[3:])
            destination = route(address, self.config.routing)
        except AddressError:
            await self.push("501 5.1.3 Bad recipient address syntax")
            return
        if rest:
            await self.push(f"555 5.5.4 Unsupported option: {rest.split()[0]}")
            return
        if len(self.envelope.rcpt_tos) >= self.config.smtpd_recipient_limit:
            await self.push("452 4.5.3 Error: too many recipients")
            return
        if not destination.local and not self.config.in_mynetworks(self._client()):
            await self.push(f"554 5.7.1 <{address}>: Relay access denied")
            return
        if destination.local and not self.intake.known_local(destination.user, destination.address):
            await self.push(f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table")
            return
        self.envelope.rcpt_tos.append(destination.address)
        await self.push("250 2.1.5 Ok")

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        queue_id = new_queue_id()
        sender = self.envelope.mail_from or ""
        client = self._client()
        entry = Envelope(queue_id, sender, list(dict.fromkeys(self.envelope.rcpt_tos)), time.time(), client, self.session.host_name or "")
        try:
            message: IncomingFile | None = self.intake.committer.open(entry)
        except OSError:
            message = None  # read the data all the same, then 451
        protocol = "ESMTPS" if self.session.ssl is not None else "ESMTP"
        received = received_line(self.config.myhostname, queue_id, self.session.host_name or "", client, protocol)
        cleanup = Cleanup(message.write if message is not None else _ignore, sender, self.config.myhostname, queue_id, received)
        self.intake.in_data += 1
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                complete = await self._receive(cleanup, message)
            except BaseException:
                if message is not None:
                    message.discard()
                raise
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
            reply = await self._accept(complete, cleanup, message)
        finally:
            self.intake.in_data -= 1
        await self.push(reply)

    async def _receive(self, cleanup: Cleanup, message: IncomingFile | None) -> bool:
        """The data up to the lone dot, unstuffed, into ``cleanup``, in pieces as large as
        the stream hands over (not line by line); False when it grew past the size limit.

        The end is the first ``.`` CRLF at the start of a line: the stream is read up
        to each ``.`` CRLF, and that is the end when a CRLF (or the start of the data)
        comes just before it. A piece never ends between a CR and the LF that may
        follow it, so that line ends are judged whole (see ``Cleanup``)."""
        reader: asyncio.StreamReader = self._reader
        limit = self.config.message_size_limit
        at_line_start, too_big = True, False
        while True:
            try:
                piece = await reader.readuntil(b".\r\n")
                ended = piece.endswith(b"\r\n.\r\n") or (at_line_start and piece == b".\r\n")
                if ended:
                    piece = piece[:-3]
            except asyncio.LimitOverrunError as exc:
                # No end within the stream's buffer: what is there goes on, less a partial ".CRLF".
                piece, ended = await reader.readexactly(exc.consumed), False
                while piece.endswith(b"\r"):
                    piece += await reader.readexactly(1)
            if piece:
                data = piece[1:] if at_line_start and piece[:1] == b"." else piece
                if b"\r\n." in data:
                    data = data.replace(b"\r\n.", b"\r\n")
                at_line_start = piece.endswith(b"\r\n")
                if too_big or (limit and cleanup.size + len(data) > limit):
                    # Read to the end all the same (RFC 5321 4.2.5), keeping nothing.
                    if not too_big and message is not None:
                        message.discard()
                    too_big = True
                else:
                    cleanup.feed(data)
            if ended:
                break
        if too_big:
            return False
        cleanup.end()
        return True

    async def _accept(self, complete: bool, cleanup: Cleanup, message: IncomingFile | None) -> str:
        if not complete:
            return "552 5.3.4 Error: message file too big"
        if message is None or message.error is not None:
            if message is not None:
                message.discard()
            return "451 4.3.0 Error: queue file write error"
        if cleanup.hops > HOPCOUNT_LIMIT:
            message.discard()
            return "554 5.4.6 Error: too many hops (mail forwarding loop)"
        try:
            await self.intake.committer.commit_file(message)
        except (OSError, RuntimeError):
            return "451 4.3.0 Error: queue file write error"
        self.intake.on_queued()
        return f"250 2.0.0 Ok: queued as {message.queue_id}"


def _ignore(_data: bytes) -> None:
    pass


class SmtpFactory:
    """Makes one session per connection, with the current settings: after
    ``reload`` new sessions get the new limits, networks and certificate."""

    def __init__(self, config: MtaConfig, committer: GroupCommitter, on_queued: Callable[[], None] = lambda: None) -> None:
        self.intake = Intake(config, committer, on_queued)

    def reload(self, config: MtaConfig) -> None:
        self.intake.reload(config)

    def __call__(self, on_close: Callable[[], None] = lambda: None) -> SmtpSession:
        return SmtpSession(self.intake, on_close)
