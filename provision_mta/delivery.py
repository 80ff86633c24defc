"""Delivery agents: local (Maildir or mbox) and remote SMTP (MX, relayhost, bound address).

Each returns one outcome per recipient: delivered, deferred (4xx, a
connection that failed: try again later) or bounced (5xx).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import os
import random
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver

from provision_mta import dkim
from provision_mta.connections import CACHE, Key

DELIVERED, DEFERRED, BOUNCED = "delivered", "deferred", "bounced"


@dataclass
class Outcome:
    recipient: str
    status: str
    detail: str


def maildir_deliver(maildir: Path, data: bytes, uid: int = -1, gid: int = -1) -> None:
    """Maildir's rule: write into tmp/, fsync, link into new/ (then fsync new/).
    Folders it makes belong to the mailbox's owner, who must be able to read them."""
    for part in (maildir, maildir / "tmp", maildir / "new", maildir / "cur"):
        if not part.is_dir():
            part.mkdir(parents=True, exist_ok=True, mode=0o700)
            if uid >= 0:
                os.chown(part, uid, gid)
    name = f"{time.time_ns()}.P{os.getpid()}R{random.getrandbits(32):08x}.{socket.gethostname()}"
    temporary = maildir / "tmp" / name
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
        if uid >= 0:
            os.fchown(descriptor, uid, gid)
    finally:
        os.close(descriptor)
    os.rename(temporary, maildir / "new" / name)
    folder = os.open(maildir / "new", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def mbox_deliver(path: Path, sender: str, data: bytes, uid: int = -1, gid: int = -1) -> None:
    """Append to an mbox file as Postfix's local(8) does on Debian: a dot-lock
    and an fcntl lock, a ``From `` line, ``>From`` quoting (mboxrd), fsync;
    a write that fails is cut back off so the mailbox is never left half-written."""
    text = re.sub(rb"\r\n", b"\n", data)
    text = re.sub(rb"(?m)^(>*From )", rb">\1", text)
    if not text.endswith(b"\n"):
        text += b"\n"
    stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime())
    entry = f"From {sender or 'MAILER-DAEMON'}  {stamp}\n".encode() + text + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _dot_lock(path):
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if uid >= 0 and os.fstat(descriptor).st_size == 0:
                os.fchown(descriptor, uid, gid)
            fcntl.lockf(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            try:
                os.write(descriptor, entry)
                os.fsync(descriptor)
            except OSError:
                os.ftruncate(descriptor, size)
                raise
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def _dot_lock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """``PATH.lock``, the lock mail readers on Debian honour besides fcntl; a stale one (over 5 minutes) is broken."""
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - lock.stat().st_mtime > 300:
                    lock.unlink()
                    continue
            if time.monotonic() > deadline:
                raise OSError(f"{lock} is held by another program") from None
            time.sleep(0.1)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@dataclass(frozen=True)
class Hop:
    name: str
    address: str
    port: int = 25

    def __str__(self) -> str:
        return f"{self.name}[{self.address}]:{self.port}"


def next_hops(domain: str, relayhost: str, resolver: dns.resolver.Resolver) -> list[Hop]:
    """Where to connect: the relayhost, else the MX records by preference, else
    the domain's own A/AAAA (RFC 5321 5.1 when there is no MX). Every name is
    resolved with ``resolver`` (the configured DNS server), as Postfix does its own lookups."""
    port = 25
    if relayhost:
        host = relayhost
        if relayhost.rpartition(":")[2].isdigit() and not relayhost.rpartition(":")[0].endswith(":"):
            host, port = relayhost.rpartition(":")[0], int(relayhost.rpartition(":")[2])
        if host.startswith("["):  # [name] or [address]: no MX lookup, as in Postfix
            name = host.strip("[]")
            return [Hop(name, address, port) for address in _addresses(name, resolver)]
        domain = host
    try:
        answer = resolver.resolve(domain, "MX")
        exchangers = [str(r.exchange).rstrip(".") for r in sorted(answer, key=lambda r: r.preference)]
        if exchangers == [""]:  # RFC 7505 null MX: the domain takes no mail
            raise LookupError(f"domain {domain} does not accept mail (null MX)")
    except dns.resolver.NoAnswer:
        exchangers = [domain]
    except dns.resolver.NXDOMAIN:
        raise LookupError(f"domain {domain} does not exist") from None
    except dns.exception.DNSException as exc:
        raise ConnectionError(f"DNS lookup for {domain} failed: {exc}") from None
    hops = [Hop(name, address, port) for name in exchangers for address in _addresses(name, resolver)]
    if not hops:
        raise ConnectionError(f"no address for the mail exchangers of {domain}: {', '.join(exchangers)}")
    return hops


def _addresses(name: str, resolver: dns.resolver.Resolver) -> list[str]:
    try:
        ipaddress.ip_address(name)
        return [name]
    except ValueError:
        pass
    found: list[str] = []
    for record_type in ("A", "AAAA"):
        try:
            found += [str(record) for record in resolver.resolve(name, record_type)]
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except dns.exception.DNSException as exc:
            raise ConnectionError(f"DNS lookup for {name} failed: {exc}") from None
    return found


def smtp_deliver(
    hops: list[Hop],
    sender: str,
    recipients: list[str],
    data: bytes,
    bind_address: str,
    helo_name: str,
    timeout: float = 60,
    on_accepted: Callable[[list[Outcome]], None] = lambda outcomes: None,
) -> list[Outcome]:
    """Try each next hop in turn until one answers; opportunistic STARTTLS.

    ``on_accepted`` runs the moment the next hop has answered the message,
    before QUIT: from the next hop's 250 to the queue file's removal, a crash
    means the message goes out twice (RFC 5321 6.1), so that gap is kept as
    short as the queue manager can make it. Nothing after the 250 (a QUIT
    that fails) can turn a delivered message into another attempt.
    """
    # SMTP lines end in CRLF; a message written with bare LF (a bounce, a local
    # submission) would otherwise arrive as one endless line.
    if data.count(b"\n") != data.count(b"\r\n"):
        data = re.sub(rb"\r?\n", b"\r\n", data)
    data = fold_long_lines(data)
    data = dkim.sign(data)  # the dkim role's keys, when it signs for the From: domain
    last_error = "no next hop"
    for hop in hops:
        key = (hop.address, hop.port, bind_address, helo_name)
        cached = CACHE.take(key)
        if cached is not None:
            outcome = _transaction(cached, hop, sender, recipients, data, on_accepted, reused=True)
            if not isinstance(outcome, str):
                return _keep_or_close(key, cached, outcome)
            last_error = outcome  # lost on the way: not a verdict on the hop, try a new connection
        # As Postfix's "may": a TLS handshake that fails is retried in plain text.
        for context in (opportunistic_tls(), None):
            try:
                client = open_session(hop, bind_address, helo_name, timeout, context)
            except TlsFailed as exc:
                last_error = f"TLS with {hop} failed: {exc.__cause__}"
                continue
            except (OSError, smtplib.SMTPException) as exc:
                last_error = f"connect to {hop}: {exc}"
                break  # the next hop, if any
            outcome = _transaction(client, hop, sender, recipients, data, on_accepted)
            if isinstance(outcome, str):
                last_error = outcome
                break
            return _keep_or_close(key, client, outcome)
    return [Outcome(r, DEFERRED, last_error) for r in recipients]


# Postfix's smtp_line_length_limit: intake takes longer lines (as Postfix's smtpd
# does), a next hop may refuse them (RFC 5321 4.5.3.1.6), so they are broken.
LINE_LENGTH_LIMIT = 999
# Tried at line starts only ((?m)^): from anywhere else it would rescan every line once per byte.
_LONG_LINE = re.compile(rb"(?m)^[^\n]{%d}" % (LINE_LENGTH_LIMIT + 2))


def fold_long_lines(data: bytes) -> bytes:
    """Lines over 999 bytes broken by inserting CRLF and a space, as Postfix's smtp client does."""
    if not _LONG_LINE.search(data):
        return data
    lines = []
    for line in data.split(b"\r\n"):
        while len(line) > LINE_LENGTH_LIMIT:
            lines.append(line[:LINE_LENGTH_LIMIT])
            line = b" " + line[LINE_LENGTH_LIMIT:]
        lines.append(line)
    return b"\r\n".join(lines)


class TlsFailed(Exception):
    """The next hop offered STARTTLS and the handshake failed (the cause is chained)."""


@functools.cache  # one for all sessions: making one loads the system's certificates
def opportunistic_tls() -> ssl.SSLContext:
    """Postfix's smtp_tls_security_level = may: encrypted, the certificate not verified."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def open_session(hop: Hop, bind_address: str, helo_name: str, timeout: float, tls: ssl.SSLContext | None) -> smtplib.SMTP:
    """A session with ``hop``: connected from ``bind_address``, EHLO as ``helo_name``,
    and STARTTLS with ``tls`` where the hop offers it.

    The hop's address goes to smtplib's constructor, which connects: smtplib names
    the TLS peer (the server name the handshake checks, and SNI where it is a name)
    after the host given to its constructor, not to connect(). An address sends no
    SNI, as Postfix sends none. tests/test_mta_delivery.py checks this against a
    real STARTTLS server whose certificate is for the address, with verification on.
    """
    source = (bind_address, 0) if bind_address else None
    client = smtplib.SMTP(hop.address, hop.port, local_hostname=helo_name or None, timeout=timeout, source_address=source)
    try:
        client.ehlo()
        if tls is not None and client.has_extn("starttls"):
            try:
                client.starttls(context=tls)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise TlsFailed() from exc
            client.ehlo()
    except BaseException:
        client.close()
        raise
    return client


def _keep_or_close(key: Key, client: smtplib.SMTP, outcomes: list[Outcome]) -> list[Outcome]:
    """A session that delivered everything waits in the cache for the next message to this hop."""
    if all(o.status == DELIVERED for o in outcomes):
        CACHE.give(key, client)
    else:
        client.close()
    return outcomes


def _transaction(
    client: smtplib.SMTP,
    hop: Hop,
    sender: str,
    recipients: list[str],
    data: bytes,
    on_accepted: Callable[[list[Outcome]], None],
    reused: bool = False,
) -> list[Outcome] | str:
    """MAIL, RCPT, DATA on an open session: the outcomes, or why the connection failed (a string)."""
    try:
        refused = send_message(client, sender, recipients, data, reused)
    except smtplib.SMTPRecipientsRefused as exc:
        return [_refused(r, *exc.recipients[r]) for r in recipients]
    except smtplib.SMTPResponseException as exc:
        status = BOUNCED if exc.smtp_code >= 500 else DEFERRED
        said = f"{hop} said: {exc.smtp_code} {_text(exc.smtp_error)}"
        return [Outcome(r, status, said) for r in recipients]
    except (OSError, smtplib.SMTPException) as exc:
        client.close()
        return f"lost connection with {hop}: {exc}"
    except BaseException:  # not a verdict of the hop's (smtplib refusing a line end...): the caller's to handle
        client.close()
        raise
    outcomes = [_refused(r, *refused[r]) if r in refused else Outcome(r, DELIVERED, str(hop)) for r in recipients]
    on_accepted(outcomes)
    return outcomes


Refusals = dict[str, tuple[int, bytes]]


def send_message(client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes, reused: bool = False) -> Refusals:
    """What smtplib's ``sendmail`` does, with its exceptions and its result (the
    refused recipients), but: where the next hop offers PIPELINING (RFC 2920),
    MAIL, every RCPT and DATA go in one write, as Postfix sends them (two round
    trips a message instead of 3 + recipients); a connection taken from the cache
    is checked with RSET within that write, not a round trip of its own (an
    answer other than 250 is a lost connection, see ``_transaction``); and the
    addresses, checked at intake, are not parsed again (smtplib runs
    ``email.utils.parseaddr`` on each, a tenth of a delivery's CPU). A line end
    in an address is refused (ValueError), as smtplib refuses it. Any answer
    but the one hoped for ends the session (it is not kept for reuse anyway)."""
    options = f" SIZE={len(data)}" if client.has_extn("size") else ""
    if not (sender.isascii() and all(r.isascii() for r in recipients)):
        if not client.has_extn("smtputf8"):  # as Postfix: the next hop cannot take these addresses
            client.close()
            raise smtplib.SMTPSenderRefused(554, b"5.6.7 SMTPUTF8 is required, but was not offered by host", sender)
        options += " SMTPUTF8"
    commands = [f"MAIL FROM:<{sender}>{options}", *(f"RCPT TO:<{r}>" for r in recipients), "DATA"]
    if reused:
        commands.insert(0, "RSET")
    if any("\r" in command or "\n" in command for command in commands):
        raise ValueError("a line end in an address")
    lines = [command.encode("utf-8") + b"\r\n" for command in commands]
    pipelining = client.has_extn("pipelining")
    if pipelining:
        client.send(b"".join(lines))
    unsent = iter(lines)

    def reply() -> tuple[int, bytes]:
        line = next(unsent)
        if not pipelining:
            client.send(line)
        return client.getreply()

    def end(error: smtplib.SMTPException) -> smtplib.SMTPException:
        client.close()
        return error

    if reused:
        code, text = reply()
        if code != 250:
            raise end(smtplib.SMTPServerDisconnected(f"RSET: {code} {_text(text)}"))
    code, text = reply()
    if code != 250:
        raise end(smtplib.SMTPSenderRefused(code, text, sender))
    refused: Refusals = {}
    for index, recipient in enumerate(recipients):
        code, text = reply()
        if code not in (250, 251):
            refused[recipient] = (code, text)
        if code == 421:  # the next hop is closing: what is left is not taken either
            refused.update({r: (code, text) for r in recipients[index + 1 :]})
            raise end(smtplib.SMTPRecipientsRefused(refused))
    if len(refused) == len(recipients):
        raise end(smtplib.SMTPRecipientsRefused(refused))
    code, text = reply()
    if code != 354:
        raise end(smtplib.SMTPDataError(code, text))
    if data.startswith(b".") or b"\n." in data:
        data = re.sub(rb"(?m)^\.", b"..", data)
    client.send(data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, text = client.getreply()
    if code != 250:
        raise end(smtplib.SMTPDataError(code, text))
    return refused


def _text(text: bytes | str) -> str:
    return text.decode(errors="replace") if isinstance(text, bytes) else text


def _refused(recipient: str, code: int, text: bytes | str) -> Outcome:
    return Outcome(recipient, BOUNCED if code >= 500 else DEFERRED, f"{code} {_text(text)}")
