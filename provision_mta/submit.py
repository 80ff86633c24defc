"""Local submission: a ``sendmail``-compatible command and the pickup step.

``sendmail [-t] [-f sender] [-i|-oi] [recipient ...]`` writes the message
durably into ``maildrop`` (the same fsync'd write as intake) and exits; the
daemon's pickup moves it through cleanup into ``incoming``.
"""

from __future__ import annotations

import getpass
import os
import time
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from provision_mta.address import AddressError, parse_mailbox
from provision_mta.cleanup import complete_headers, qualify, received_line
from provision_mta.config import MtaConfig
from provision_mta.queue import (
    TEMPORARY_PREFIX,
    CorruptQueueFile,
    Envelope,
    Queue,
    fsync_folder,
    message_bytes,
    new_queue_id,
    read_message,
    write_synced,
)


class SubmitError(Exception):
    pass


def parse_sendmail_args(argv: list[str]) -> tuple[str | None, bool, bool, list[str]]:
    """(sender, -t, -i, recipients); other historic flags (-oem, -odi, -B8BITMIME...) are accepted and ignored."""
    sender, from_headers, ignore_dots, recipients = None, False, False, []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            recipients += argv[index + 1 :]
            break
        if arg == "-t":
            from_headers = True
        elif arg in ("-i", "-oi"):
            ignore_dots = True
        elif arg == "-f" or arg == "-r":
            index += 1
            if index >= len(argv):
                raise SubmitError(f"{arg} needs a sender address")
            sender = argv[index]
        elif arg.startswith(("-f", "-r")) and len(arg) > 2:
            sender = arg[2:]
        elif arg in ("-F", "-N", "-R", "-V", "-X", "-B", "-C", "-O", "-o"):
            index += 1  # takes a value we do not use
        elif arg.startswith("-"):
            pass
        else:
            recipients.append(arg)
        index += 1
    return sender, from_headers, ignore_dots, recipients


def read_input(data: bytes, ignore_dots: bool) -> bytes:
    if ignore_dots:
        return data
    # Without -i, a line with a single dot ends the message, as sendmail always did.
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        if line.rstrip(b"\r") == b".":
            return b"\n".join(lines[:number]) + b"\n"
    return data


def recipients_from_headers(data: bytes) -> tuple[list[str], bytes]:
    """-t: To, Cc and Bcc give the recipients; Bcc is then removed."""
    headers = BytesHeaderParser().parsebytes(data)
    found = [address for _, address in getaddresses(headers.get_all("to", []) + headers.get_all("cc", []) + headers.get_all("bcc", []))]
    head, separator, body = data.partition(b"\n\n") if b"\r\n\r\n" not in data else data.partition(b"\r\n\r\n")
    kept, skipping = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return [a for a in found if a], b"".join(kept) + separator + body


def submit(config: MtaConfig, argv: list[str], data: bytes) -> str:
    sender, from_headers, ignore_dots, recipients = parse_sendmail_args(argv)
    data = read_input(data, ignore_dots)
    if from_headers:
        found, data = recipients_from_headers(data)
        recipients += found
    if not recipients:
        raise SubmitError("no recipients given (add them as arguments, or use -t)")
    sender = sender if sender is not None else getpass.getuser()
    # Checked here, where the caller can be told: a CR or LF in an address would
    # otherwise reach a header (Return-Path) or the next hop's MAIL FROM.
    for address in [sender, *recipients] if sender else recipients:
        try:
            parse_mailbox(address)
        except AddressError as exc:
            raise SubmitError(f"{address!r}: bad address syntax: {exc}") from None
    queue = Queue(config.queue_directory)
    envelope = Envelope(new_queue_id(), sender, recipients, time.time(), client="local")
    folder = queue.folder("maildrop")
    temporary = folder / (TEMPORARY_PREFIX + envelope.queue_id)
    write_synced(temporary, message_bytes(envelope, data))
    try:
        os.replace(temporary, folder / envelope.queue_id)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(folder)
    return envelope.queue_id


def pickup(config: MtaConfig, queue: Queue) -> list[tuple[str, str]]:
    """maildrop → cleanup → incoming. A file it cannot read goes to ``corrupt``;
    returns those, with the reason, for the caller to log."""
    corrupt = []
    for queue_id in queue.list("maildrop"):
        path = queue.folder("maildrop") / queue_id
        try:
            envelope, data = read_message(path)
        except CorruptQueueFile as exc:
            queue.quarantine(queue_id, "maildrop")
            corrupt.append((queue_id, str(exc)))
            continue
        except OSError:
            continue
        envelope.sender = qualify(envelope.sender, config.myorigin)
        envelope.recipients = [qualify(r, config.myorigin) for r in envelope.recipients]
        data = complete_headers(data, envelope.sender, config.myhostname, queue_id, received_line(config.myhostname, queue_id))
        queue.rewrite("incoming", envelope, data)
        path.unlink()
        fsync_folder(path.parent)
    return corrupt
