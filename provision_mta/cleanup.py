"""What Postfix's cleanup does to a message on its way in: complete the
headers a sender left out, qualify bare addresses with ``$myorigin``."""

from __future__ import annotations

import email.utils
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def qualify(address: str, myorigin: str) -> str:
    """``user`` → ``user@$myorigin``; the null sender and full addresses stay."""
    if not address or "@" in address:
        return address
    return f"{address}@{myorigin}"


# Postfix's hopcount_limit: more Received lines than this is a mail loop.
HOPCOUNT_LIMIT = 50


def _header_names(data: bytes) -> list[bytes]:
    match = _HEADER_END.search(data)
    head = data[: match.start()] if match else data
    names = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().lower())
    return names


def hop_count(data: bytes) -> int:
    return _header_names(data).count(b"received")


def received_line(myhostname: str, queue_id: str, helo: str = "", client: str = "", protocol: str = "ESMTP") -> str:
    """As Postfix writes it: who handed the message over (a client, or local submission), who took it, when."""
    when = email.utils.formatdate(localtime=True)
    if not client:
        return f"Received: by {myhostname} (provision-mta) id {queue_id};\r\n\t{when}"
    source = f"from {helo or 'unknown'} (unknown [{client}])"
    return f"Received: {source}\r\n\tby {myhostname} (provision-mta) with {protocol} id {queue_id};\r\n\t{when}"


def complete_headers(data: bytes, sender: str, myhostname: str, queue_id: str, received: str = "") -> bytes:
    """Prepend the Received line and any missing From:, Date:, Message-ID:."""
    present = set(_header_names(data))
    added = [received] if received else []
    if b"from" not in present:
        added.append(f"From: {sender or 'MAILER-DAEMON@' + myhostname}")
    if b"date" not in present:
        added.append(f"Date: {email.utils.formatdate(localtime=True)}")
    if b"message-id" not in present:
        added.append(f"Message-ID: <{queue_id}@{myhostname}>")
    if not added:
        return data
    newline = b"\r\n" if b"\r\n" in data[:1000] else b"\n"
    return newline.join(line.replace("\r\n", newline.decode()).encode() for line in added) + newline + data
