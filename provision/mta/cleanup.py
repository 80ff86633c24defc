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


def _header_names(data: bytes) -> set[bytes]:
    match = _HEADER_END.search(data)
    head = data[: match.start()] if match else data
    names = set()
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.add(line.split(b":", 1)[0].strip().lower())
    return names


def complete_headers(data: bytes, sender: str, myhostname: str, queue_id: str) -> bytes:
    """Prepend a Received line and any missing From:, Date:, Message-ID:."""
    present = _header_names(data)
    added = []
    if b"from" not in present:
        added.append(f"From: {sender or 'MAILER-DAEMON@' + myhostname}")
    if b"date" not in present:
        added.append(f"Date: {email.utils.formatdate(localtime=True)}")
    if b"message-id" not in present:
        added.append(f"Message-ID: <{queue_id}@{myhostname}>")
    if not added:
        return data
    newline = b"\r\n" if b"\r\n" in data[:1000] else b"\n"
    return newline.join(line.encode() for line in added) + newline + data
